//! Recovery of `raft.log` when the [`LogStore`](super::log_store::LogStore)
//! opens: every frame is checked (length, CRC-32, consecutive index); a bad
//! frame followed only by zeros is a torn tail, cut off; any other bad frame
//! is corruption of acknowledged data, reported and left alone. The rules
//! are in the `log_store` module docs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use openraft::entry::RaftEntry;

use super::log_store::{LogStoreError, FRAME_HEADER_BYTES, MAX_ENTRY_BYTES};
use super::types::{Entry, LogId};

pub(crate) struct Recovered {
    pub(crate) entries: BTreeMap<u64, Entry>,
    /// Length of the valid prefix of `raft.log`.
    pub(crate) valid_len: u64,
    /// `Some(valid_len)` if a torn tail must be cut off.
    pub(crate) truncate_to: Option<u64>,
    /// Entries at or below the purge point were found (and dropped).
    pub(crate) dropped_purged: bool,
}

/// A frame that is not valid, and where it ends if its length is plausible
/// and within the file.
struct BadFrame {
    reason: String,
    end: Option<usize>,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The payload of the frame at `pos`, if its header and CRC are valid.
fn checked_payload(bytes: &[u8], pos: usize) -> Result<(&[u8], usize), BadFrame> {
    let remaining = bytes.len().saturating_sub(pos);
    let (Some(len), Some(crc)) = (read_u32(bytes, pos), read_u32(bytes, pos + 4)) else {
        return Err(BadFrame {
            reason: format!("incomplete frame header ({remaining} of {FRAME_HEADER_BYTES} bytes)"),
            end: None,
        });
    };
    let len = len as usize;
    if len == 0 || len > MAX_ENTRY_BYTES {
        return Err(BadFrame {
            reason: format!("implausible payload length {len}"),
            end: None,
        });
    }
    let start = pos + FRAME_HEADER_BYTES;
    let end = start.saturating_add(len);
    let Some(payload) = bytes.get(start..end) else {
        return Err(BadFrame {
            reason: format!(
                "incomplete frame: payload of {len} bytes, {} present",
                remaining - FRAME_HEADER_BYTES
            ),
            end: None,
        });
    };
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(BadFrame {
            reason: format!("CRC mismatch: stored {crc:#010x}, computed {actual:#010x}"),
            end: Some(end),
        });
    }
    Ok((payload, end))
}

/// A torn tail is what an append interrupted before its fsync leaves: the
/// bad frame is followed by nothing but zeros (filesystems may extend the
/// file before the data lands) and no valid frame starts after it. Returns
/// why the bad frame at `pos` is *not* a torn tail, if it is not: a valid
/// frame later on means acknowledged data follows, so this is corruption.
fn not_torn_tail(bytes: &[u8], pos: usize, bad: &BadFrame) -> Option<String> {
    let after = bad.end.unwrap_or(bytes.len());
    let nonzero = bytes
        .get(after..)
        .map_or(0, |rest| rest.iter().filter(|b| **b != 0).count());
    if nonzero > 0 {
        return Some(format!("{nonzero} non-zero bytes follow it"));
    }
    ((pos + 1)..bytes.len())
        .find(|p| checked_payload(bytes, *p).is_ok())
        .map(|p| format!("a valid frame follows at byte offset {p}"))
}

pub(crate) fn recover_log(
    path: &Path,
    last_purged: Option<&LogId>,
) -> Result<Recovered, LogStoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(LogStoreError::io(path, e)),
    };
    let corrupt = |offset: usize, reason: String| LogStoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut entries = BTreeMap::new();
    let mut prev: Option<u64> = None;
    let mut dropped_purged = false;
    let mut pos = 0;
    let mut truncate_to = None;
    while pos < bytes.len() {
        let (payload, end) = match checked_payload(&bytes, pos) {
            Ok(frame) => frame,
            Err(bad) => match not_torn_tail(&bytes, pos, &bad) {
                Some(why) => return Err(corrupt(pos, format!("{}; {why}", bad.reason))),
                None => {
                    tracing::warn!(
                        "{}: truncating a torn tail of {} bytes at byte offset {pos}: {}",
                        path.display(),
                        bytes.len() - pos,
                        bad.reason
                    );
                    truncate_to = Some(pos as u64);
                    break;
                }
            },
        };
        // A payload whose CRC matches was written completely: if it does not
        // decode, the cause is a format mismatch, not a crash, and dropping it
        // could lose a committed entry.
        let entry: Entry = serde_json::from_slice(payload)
            .map_err(|e| corrupt(pos, format!("CRC-valid entry does not decode: {e}")))?;
        let index = entry.index();
        match (prev, last_purged) {
            (Some(p), _) if Some(index) != p.checked_add(1) => {
                return Err(corrupt(
                    pos,
                    format!("entry index {index} does not follow index {p}"),
                ));
            }
            (None, Some(purged)) if index > purged.index.saturating_add(1) => {
                return Err(corrupt(
                    pos,
                    format!(
                        "first entry index {index} leaves a hole after the last purged log id {purged}"
                    ),
                ));
            }
            _ => {}
        }
        prev = Some(index);
        if last_purged.is_some_and(|p| index <= p.index) {
            dropped_purged = true;
        } else {
            entries.insert(index, entry);
        }
        pos = end;
    }
    Ok(Recovered {
        entries,
        valid_len: pos as u64,
        truncate_to,
        dropped_purged,
    })
}

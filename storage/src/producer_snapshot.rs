//! Producer-state snapshot files (Kafka's `<offset>.snapshot`, written by
//! `ProducerStateManager.takeSnapshot`): the state of a partition's producers
//! and transactions after every batch below `offset`, so opening a partition
//! scans only the log after the newest usable snapshot instead of the whole
//! log.
//!
//! A partition directory holds `<20-digit offset>.snapshot` files, written
//! atomically (temp file, fsync, rename, directory fsync) when a segment
//! rolls and when the log closes. Our own format, big-endian, in the spirit
//! of Kafka's (a version, a CRC over the rest, then the entries):
//!
//! ```text
//! version            i16   1
//! crc                u32   CRC-32 (IEEE, crc32fast) of every byte after this field
//! offset             i64   the snapshot covers batches below it (= the file name)
//! hw_applied         i64   high watermark last applied to the transactions
//! producer_count     i32   then per producer, least recently used first:
//!   producer_id      i64
//!   epoch            i16
//!   last_timestamp   i64
//!   has_coord_epoch  i8    0 or 1
//!   coordinator_epoch i32  last marker's coordinator epoch (ignored if has_coord_epoch = 0)
//!   batch_count      i8    ≤ 5, then per batch, oldest first:
//!     first_seq i32, last_seq i32, first_offset i64, last_offset i64
//! ongoing_count      i32   then per ongoing transaction, oldest first:
//!   producer_id i64, first_offset i64
//! unreplicated_count i32   then per decided transaction whose marker is ≥ hw_applied:
//!   producer_id i64, first_offset i64, marker_offset i64
//! ```
//!
//! Reading never trusts the file: a wrong version, CRC, count or length is a
//! [`SnapshotError`], which the log answers by trying an older snapshot and
//! at last the full scan. No allocation is sized by a count before the bytes
//! behind it are known to be there.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::checkpoint::write_atomically;
use crate::error::{IoContext, Result};
use crate::log_segment::{parse_segment_name, remove_if_exists, segment_file};
use crate::producer_state::{BatchMetadata, ProducerSnapshotEntry, BATCHES_TO_RETAIN};
use crate::txn_tracker::TxnSnapshot;

pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Left behind by a write a crash interrupted; removed on open.
const TMP_SUFFIX: &str = ".snapshot.tmp";
/// The only version written and read.
pub const SNAPSHOT_VERSION: i16 = 1;
/// Snapshots kept per partition: the newest few serve reopening and a
/// follower's truncation to near its log end; older ones are deleted.
pub const SNAPSHOTS_TO_RETAIN: usize = 3;
/// Largest snapshot file read (far above [`crate::producer_state::MAX_PRODUCERS`]
/// full entries, about 16 MiB).
pub const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

const HEADER_BYTES: usize = 2 + 4;
const PRODUCER_MIN_BYTES: usize = 8 + 2 + 8 + 1 + 4 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
const ONGOING_BYTES: usize = 16;
const UNREPLICATED_BYTES: usize = 24;

/// The producer and transaction state after every batch below `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub producers: Vec<ProducerSnapshotEntry>,
    pub txns: TxnSnapshot,
}

/// Why a snapshot file was not used.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot of {0} bytes exceeds the limit")]
    TooLarge(u64),
    #[error("unknown snapshot version {0}")]
    UnknownVersion(i16),
    #[error("snapshot CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("snapshot truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed snapshot: {0}")]
    Malformed(&'static str),
    #[error("snapshot holds offset {found}, its name says {named}")]
    OffsetMismatch { named: i64, found: i64 },
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    segment_file(dir, offset, SNAPSHOT_SUFFIX)
}

/// Offsets of the snapshot files in `dir`, ascending. Removes temp files a
/// crash left behind.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(offset) = parse_segment_name(&name, SNAPSHOT_SUFFIX) {
            out.push(offset);
        } else if parse_segment_name(&name, TMP_SUFFIX).is_some() {
            remove_if_exists(&entry.path())?;
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Write `snapshot` to `dir` atomically, replacing one at the same offset.
pub fn write_snapshot(dir: &Path, snapshot: &ProducerSnapshot) -> Result<()> {
    write_atomically(&snapshot_path(dir, snapshot.offset), &encode(snapshot))
}

/// Read and check the snapshot at `offset` in `dir`.
pub fn read_snapshot(dir: &Path, offset: i64) -> Result<ProducerSnapshot, SnapshotError> {
    let path = snapshot_path(dir, offset);
    let io = |source| SnapshotError::Io {
        path: path.clone(),
        source,
    };
    let len = fs::metadata(&path).map_err(io)?.len();
    if len > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::TooLarge(len));
    }
    let bytes = fs::read(&path).map_err(io)?;
    let snapshot = decode(&bytes)?;
    if snapshot.offset != offset {
        return Err(SnapshotError::OffsetMismatch {
            named: offset,
            found: snapshot.offset,
        });
    }
    Ok(snapshot)
}

/// Delete the snapshots in `dir` whose offset `doomed` selects.
pub fn delete_snapshots(dir: &Path, doomed: impl Fn(i64) -> bool) -> Result<()> {
    for offset in list_snapshots(dir)? {
        if doomed(offset) {
            remove_if_exists(&snapshot_path(dir, offset))?;
        }
    }
    Ok(())
}

/// Keep only the newest [`SNAPSHOTS_TO_RETAIN`] snapshots in `dir`.
pub fn retain_newest(dir: &Path) -> Result<()> {
    let offsets = list_snapshots(dir)?;
    let excess = offsets.len().saturating_sub(SNAPSHOTS_TO_RETAIN);
    for offset in offsets.into_iter().take(excess) {
        remove_if_exists(&snapshot_path(dir, offset))?;
    }
    Ok(())
}

/// The file's bytes.
pub fn encode(s: &ProducerSnapshot) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        32 + s.producers.len() * (PRODUCER_MIN_BYTES + BATCHES_TO_RETAIN * BATCH_BYTES),
    );
    body.extend_from_slice(&s.offset.to_be_bytes());
    body.extend_from_slice(&s.txns.hw_applied.to_be_bytes());
    put_count(&mut body, s.producers.len());
    for p in &s.producers {
        body.extend_from_slice(&p.producer_id.to_be_bytes());
        body.extend_from_slice(&p.epoch.to_be_bytes());
        body.extend_from_slice(&p.last_timestamp.to_be_bytes());
        body.push(u8::from(p.coordinator_epoch.is_some()));
        body.extend_from_slice(&p.coordinator_epoch.unwrap_or(-1).to_be_bytes());
        // The state keeps at most BATCHES_TO_RETAIN; write the newest if not.
        let skip = p.batches.len().saturating_sub(BATCHES_TO_RETAIN);
        body.push((p.batches.len() - skip) as u8);
        for b in p.batches.iter().skip(skip) {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    put_count(&mut body, s.txns.ongoing.len());
    for (pid, first) in &s.txns.ongoing {
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(&first.to_be_bytes());
    }
    put_count(&mut body, s.txns.unreplicated.len());
    for (pid, first, marker) in &s.txns.unreplicated {
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(&first.to_be_bytes());
        body.extend_from_slice(&marker.to_be_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Counts are bounded by the state's own limits, far below `i32::MAX`.
fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes());
}

/// Parse a snapshot file's bytes, checking version, CRC and every length.
pub fn decode(bytes: &[u8]) -> Result<ProducerSnapshot, SnapshotError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16("version")?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnknownVersion(version));
    }
    let stored = r.u32("crc")?;
    let computed = crc32fast::hash(r.buf);
    if stored != computed {
        return Err(SnapshotError::CrcMismatch { stored, computed });
    }
    let offset = r.i64("offset")?;
    let hw_applied = r.i64("high watermark")?;
    let count = r.count(PRODUCER_MIN_BYTES, "producers")?;
    let mut producers = Vec::with_capacity(count);
    for _ in 0..count {
        let producer_id = r.i64("producer id")?;
        let epoch = r.i16("epoch")?;
        let last_timestamp = r.i64("timestamp")?;
        let has_coord = r.u8("coordinator epoch flag")?;
        let coord = r.i32("coordinator epoch")?;
        let coordinator_epoch = match has_coord {
            0 => None,
            1 => Some(coord),
            _ => return Err(SnapshotError::Malformed("coordinator epoch flag")),
        };
        let n = usize::from(r.u8("batch count")?);
        if n > BATCHES_TO_RETAIN {
            return Err(SnapshotError::Malformed("more batches than are retained"));
        }
        let mut batches = Vec::with_capacity(n);
        for _ in 0..n {
            batches.push(BatchMetadata {
                first_seq: r.i32("first sequence")?,
                last_seq: r.i32("last sequence")?,
                first_offset: r.i64("first offset")?,
                last_offset: r.i64("last offset")?,
            });
        }
        producers.push(ProducerSnapshotEntry {
            producer_id,
            epoch,
            last_timestamp,
            coordinator_epoch,
            batches,
        });
    }
    let count = r.count(ONGOING_BYTES, "ongoing transactions")?;
    let mut ongoing = Vec::with_capacity(count);
    for _ in 0..count {
        ongoing.push((r.i64("producer id")?, r.i64("first offset")?));
    }
    let count = r.count(UNREPLICATED_BYTES, "unreplicated transactions")?;
    let mut unreplicated = Vec::with_capacity(count);
    for _ in 0..count {
        unreplicated.push((
            r.i64("producer id")?,
            r.i64("first offset")?,
            r.i64("marker offset")?,
        ));
    }
    if !r.buf.is_empty() {
        return Err(SnapshotError::Malformed("trailing bytes"));
    }
    Ok(ProducerSnapshot {
        offset,
        producers,
        txns: TxnSnapshot {
            ongoing,
            unreplicated,
            hw_applied,
        },
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated(what))?;
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>(what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take(what)?))
    }

    /// A count of entries of at least `min_bytes` each, checked against the
    /// bytes left before anything is allocated for them.
    fn count(&mut self, min_bytes: usize, what: &'static str) -> Result<usize, SnapshotError> {
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| SnapshotError::Malformed(what))?;
        if n.saturating_mul(min_bytes) > self.buf.len() {
            return Err(SnapshotError::Truncated(what));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ProducerSnapshot {
        ProducerSnapshot {
            offset: 1234,
            producers: vec![
                ProducerSnapshotEntry {
                    producer_id: 7,
                    epoch: 3,
                    last_timestamp: 1_700_000_000_000,
                    coordinator_epoch: Some(4),
                    batches: vec![
                        BatchMetadata {
                            first_seq: 0,
                            last_seq: 9,
                            first_offset: 100,
                            last_offset: 109,
                        },
                        BatchMetadata {
                            first_seq: 10,
                            last_seq: 10,
                            first_offset: 200,
                            last_offset: 200,
                        },
                    ],
                },
                ProducerSnapshotEntry {
                    producer_id: 8,
                    epoch: 0,
                    last_timestamp: -1,
                    coordinator_epoch: None,
                    batches: vec![],
                },
            ],
            txns: TxnSnapshot {
                ongoing: vec![(7, 150)],
                unreplicated: vec![(8, 90, 1200)],
                hw_applied: 1100,
            },
        }
    }

    #[test]
    fn snapshot_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        write_snapshot(dir.path(), &s).unwrap();
        assert!(dir.path().join("00000000000000001234.snapshot").exists());
        assert_eq!(read_snapshot(dir.path(), 1234).unwrap(), s);
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![1234]);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x5a;
            assert!(decode(&bad).is_err(), "byte {i} flipped");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn unknown_version_and_wrong_name_are_refused() {
        let mut bytes = encode(&sample());
        bytes[1] = 2;
        assert!(matches!(
            decode(&bytes),
            Err(SnapshotError::UnknownVersion(2))
        ));
        let dir = tempfile::tempdir().unwrap();
        fs::write(snapshot_path(dir.path(), 99), encode(&sample())).unwrap();
        assert!(matches!(
            read_snapshot(dir.path(), 99),
            Err(SnapshotError::OffsetMismatch { .. })
        ));
    }

    #[test]
    fn huge_claimed_counts_allocate_nothing() {
        let mut body = Vec::new();
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut bytes = SNAPSHOT_VERSION.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        assert!(matches!(decode(&bytes), Err(SnapshotError::Truncated(_))));
    }

    #[test]
    fn retention_keeps_the_newest_and_removes_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [0, 10, 20, 30, 40] {
            write_snapshot(
                dir.path(),
                &ProducerSnapshot {
                    offset,
                    ..ProducerSnapshot::default()
                },
            )
            .unwrap();
        }
        fs::write(dir.path().join("00000000000000000050.snapshot.tmp"), b"x").unwrap();
        retain_newest(dir.path()).unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20, 30, 40]);
        assert!(!dir
            .path()
            .join("00000000000000000050.snapshot.tmp")
            .exists());
        delete_snapshots(dir.path(), |o| o > 25).unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}

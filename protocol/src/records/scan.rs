//! A produced batch's records read in place, as Kafka's `LogValidator`
//! iterates them before it appends: every record must parse, and what the
//! broker checks per record (timestamp, key) is reported without decoding
//! keys, values or headers into owned memory.
//!
//! [`scan_batch`] walks an uncompressed batch's bytes where they lie and a
//! compressed one's after decompressing it (Kafka decompresses every
//! produced compressed batch too). The walk checks the structure
//! [`super::decode_batch`] relies on: each record's key, value and headers
//! lie inside its length and fill it exactly, the records fill the payload
//! exactly, they are `record_count` many and each offset delta lies within
//! `0..=last_offset_delta`.

use super::{short_unsigned_at, unzigzag32, unzigzag64, Malformed, OFFSET_DELTA_OUT_OF_RANGE};
use crate::compression;
use crate::error::RecordError;
use crate::record_batch::{BatchHeader, Compression, HEADER_SIZE};

/// What the broker checks of one record, in batch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSketch {
    /// Its position in the batch (Kafka's `batch_index` in record errors).
    pub index: usize,
    pub timestamp_delta: i64,
    /// A key is present (a compacted topic refuses records without one).
    pub has_key: bool,
}

/// The records of a batch at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Smallest and largest timestamp delta (`None` only for a batch
    /// without records, which [`scan_batch`] refuses).
    pub timestamp_deltas: Option<(i64, i64)>,
    /// Records without a key.
    pub keyless: usize,
}

impl BatchSummary {
    /// The largest record timestamp, `base_timestamp + max delta`.
    pub fn max_timestamp(&self, header: &BatchHeader) -> Option<i64> {
        self.timestamp_deltas
            .map(|(_, max)| header.base_timestamp.saturating_add(max))
    }

    /// The smallest record timestamp.
    pub fn min_timestamp(&self, header: &BatchHeader) -> Option<i64> {
        self.timestamp_deltas
            .map(|(min, _)| header.base_timestamp.saturating_add(min))
    }
}

/// Walk every record of the complete batch `batch` (header included, CRC
/// already checked), decompressing at most `limit` bytes, and call `visit`
/// for each in order.
///
/// Errors: [`RecordError::Malformed`] when a record does not parse or the
/// records break an invariant of the module comment,
/// [`RecordError::TooLarge`] / [`RecordError::Decompress`] when the payload
/// does not decompress within `limit`, [`RecordError::Batch`] for a bad
/// header.
pub fn scan_batch(
    batch: &[u8],
    limit: usize,
    visit: impl FnMut(RecordSketch),
) -> Result<BatchSummary, RecordError> {
    let header = BatchHeader::parse(batch)?;
    let payload = batch.get(HEADER_SIZE..).unwrap_or_default();
    match header.compression()? {
        Compression::None => scan_payload(payload, &header, visit),
        codec => {
            let plain = compression::decompress(codec, payload, limit)?;
            scan_payload(&plain, &header, visit)
        }
    }
}

fn scan_payload(
    mut rest: &[u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordSketch),
) -> Result<BatchSummary, RecordError> {
    let expected =
        usize::try_from(header.record_count).map_err(|_| Malformed("negative record count"))?;
    let mut summary = BatchSummary {
        timestamp_deltas: None,
        keyless: 0,
    };
    let mut index = 0;
    while !rest.is_empty() {
        if index == expected {
            return Err(Malformed("more records than the batch's record count"));
        }
        let (len, used) = length_at(rest, "negative record length")?;
        let end = used
            .checked_add(len)
            .filter(|&end| end <= rest.len())
            .ok_or(Malformed("record runs past the batch"))?;
        let sketch = scan_record(&rest[used..end], index, header.last_offset_delta)?;
        summary.timestamp_deltas = Some(match summary.timestamp_deltas {
            None => (sketch.timestamp_delta, sketch.timestamp_delta),
            Some((lo, hi)) => (
                lo.min(sketch.timestamp_delta),
                hi.max(sketch.timestamp_delta),
            ),
        });
        summary.keyless += usize::from(!sketch.has_key);
        visit(sketch);
        rest = &rest[end..];
        index += 1;
    }
    if index != expected {
        return Err(Malformed("fewer records than the batch's record count"));
    }
    Ok(summary)
}

/// One record's body (after its length): every field must be there and
/// the body must end with its last header.
#[inline]
fn scan_record(
    mut body: &[u8],
    index: usize,
    last_offset_delta: i32,
) -> Result<RecordSketch, RecordError> {
    // Attributes: unused in v2.
    body = body.get(1..).ok_or(Malformed("record truncated"))?;
    let (raw, used) = short_unsigned_at(body, 64)?;
    let timestamp_delta = unzigzag64(raw);
    body = &body[used..];
    let (raw, used) = short_unsigned_at(body, 32)?;
    let offset_delta = unzigzag32(raw)?;
    if offset_delta < 0 || offset_delta > last_offset_delta {
        return Err(Malformed(OFFSET_DELTA_OUT_OF_RANGE));
    }
    body = &body[used..];
    let has_key = skip_nullable(&mut body, "negative key length")?;
    skip_nullable(&mut body, "negative value length")?;
    let (headers, used) = length_at(body, "negative header count")?;
    body = &body[used..];
    for _ in 0..headers {
        let (len, used) = length_at(body, "negative header key length")?;
        body = body
            .get(used.saturating_add(len)..)
            .ok_or(Malformed("record truncated"))?;
        skip_nullable(&mut body, "negative header value length")?;
    }
    if !body.is_empty() {
        return Err(Malformed("record length exceeds its fields"));
    }
    Ok(RecordSketch {
        index,
        timestamp_delta,
        has_key,
    })
}

/// A non-negative varint length at the front of `buf`: `(length, bytes used)`.
#[inline]
fn length_at(buf: &[u8], what: &'static str) -> Result<(usize, usize), RecordError> {
    let (raw, used) = short_unsigned_at(buf, 32)?;
    let len = usize::try_from(unzigzag32(raw)?).map_err(|_| Malformed(what))?;
    Ok((len, used))
}

/// Step over a nullable byte field (varint length, -1 = null); whether it
/// was present.
#[inline]
fn skip_nullable(buf: &mut &[u8], what: &'static str) -> Result<bool, RecordError> {
    let (raw, used) = short_unsigned_at(buf, 32)?;
    let len = unzigzag32(raw)?;
    if len == -1 {
        *buf = &buf[used..];
        return Ok(false);
    }
    let len = usize::try_from(len).map_err(|_| Malformed(what))?;
    *buf = buf
        .get(used.saturating_add(len)..)
        .ok_or(Malformed("record truncated"))?;
    Ok(true)
}

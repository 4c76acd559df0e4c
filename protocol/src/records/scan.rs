//! A produced batch's records read as they lie, as Kafka's `LogValidator`
//! iterates them before it appends: every record must parse, and what the
//! broker checks per record (timestamp, key) is reported without decoding
//! keys, values or headers into memory.
//!
//! [`scan_batch`] walks an uncompressed batch's bytes in place and a
//! compressed one's plaintext as it inflates (Kafka decompresses every
//! produced compressed batch too), 16 KiB at a time, so a batch that
//! inflates to the limit costs the decoder's state, not the plaintext.
//! The walk checks the structure [`super::decode_batch`] relies on: each
//! record's key, value and headers lie inside its length and fill it
//! exactly, the records fill the payload exactly, they are `record_count`
//! many and each offset delta lies within `0..=last_offset_delta`.

use std::io::{BufRead, BufReader};

use super::{short_unsigned_at, unzigzag32, unzigzag64, Malformed, OFFSET_DELTA_OUT_OF_RANGE};
use crate::compression;
use crate::error::RecordError;
use crate::record_batch::{BatchHeader, Compression, HEADER_SIZE};

/// Plaintext read per refill of a compressed batch's stream.
const STREAM_CHUNK: usize = 16 * 1024;

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
    /// Before any record.
    pub const EMPTY: BatchSummary = BatchSummary {
        timestamp_deltas: None,
        keyless: 0,
    };

    /// Count one more record.
    pub fn add(&mut self, r: &RecordSketch) {
        let d = r.timestamp_delta;
        self.timestamp_deltas = Some(match self.timestamp_deltas {
            None => (d, d),
            Some((lo, hi)) => (lo.min(d), hi.max(d)),
        });
        self.keyless += usize::from(!r.has_key);
    }

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

/// What [`scan_batch`] would report of the records of an already decoded
/// batch, in order (for a batch the broker decodes anyway).
pub fn sketches(decoded: &super::DecodedBatch) -> impl Iterator<Item = RecordSketch> + '_ {
    decoded
        .records
        .iter()
        .enumerate()
        .map(|(index, r)| RecordSketch {
            index,
            timestamp_delta: r.timestamp_delta,
            has_key: r.key.is_some(),
        })
}

/// Walk every record of the complete batch `batch` (header included, CRC
/// already checked), inflating at most `limit` bytes, and call `visit` for
/// each in order.
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
        Compression::None => scan(
            &mut Slice {
                buf: payload,
                pos: 0,
            },
            &header,
            visit,
        ),
        codec => {
            let reader = compression::reader(codec, payload, limit)?;
            let mut source = Stream {
                reader: BufReader::with_capacity(STREAM_CHUNK, reader),
                pos: 0,
                codec,
                limit,
            };
            scan(&mut source, &header, visit)
        }
    }
}

/// Where the records' bytes come from: the batch itself, or a decoder.
trait Source {
    /// Bytes consumed so far.
    fn pos(&self) -> usize;
    /// No byte is left.
    fn at_end(&mut self) -> Result<bool, RecordError>;
    /// An unsigned varint of at most `bits` bits.
    fn unsigned(&mut self, bits: u32) -> Result<u64, RecordError>;
    /// Step over `n` bytes.
    fn skip(&mut self, n: usize) -> Result<(), RecordError>;
}

struct Slice<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for Slice<'_> {
    fn pos(&self) -> usize {
        self.pos
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        Ok(self.pos >= self.buf.len())
    }

    #[inline]
    fn unsigned(&mut self, bits: u32) -> Result<u64, RecordError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (value, used) = short_unsigned_at(rest, bits)?;
        self.pos += used;
        Ok(value)
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), RecordError> {
        self.pos = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(Malformed("record truncated"))?;
        Ok(())
    }
}

struct Stream<R> {
    reader: BufReader<R>,
    pos: usize,
    codec: Compression,
    limit: usize,
}

impl<R: std::io::Read> Stream<R> {
    /// The buffered bytes, refilled when empty; empty only at the end.
    fn buffered(&mut self) -> Result<&[u8], RecordError> {
        let (codec, limit) = (self.codec, self.limit);
        self.reader
            .fill_buf()
            .map_err(|e| compression::stream_error(codec, e, limit))
    }
}

impl<R: std::io::Read> Source for Stream<R> {
    fn pos(&self) -> usize {
        self.pos
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        Ok(self.buffered()?.is_empty())
    }

    fn unsigned(&mut self, bits: u32) -> Result<u64, RecordError> {
        // A varint is at most 10 bytes: gather them across refills.
        let mut bytes = [0u8; 10];
        let mut len = 0;
        loop {
            let buf = self.buffered()?;
            let Some(&b) = buf.first() else {
                return Err(Malformed("record truncated"));
            };
            self.reader.consume(1);
            self.pos += 1;
            if let Some(slot) = bytes.get_mut(len) {
                *slot = b;
            }
            len += 1;
            if b & 0x80 == 0 || len >= bytes.len() {
                let got = bytes.get(..len).unwrap_or_default();
                return super::unsigned_at(got, bits).map(|(v, _)| v);
            }
        }
    }

    fn skip(&mut self, mut n: usize) -> Result<(), RecordError> {
        while n > 0 {
            let available = self.buffered()?.len();
            if available == 0 {
                return Err(Malformed("record truncated"));
            }
            let step = available.min(n);
            self.reader.consume(step);
            self.pos += step;
            n -= step;
        }
        Ok(())
    }
}

fn scan(
    src: &mut impl Source,
    header: &BatchHeader,
    mut visit: impl FnMut(RecordSketch),
) -> Result<BatchSummary, RecordError> {
    let expected =
        usize::try_from(header.record_count).map_err(|_| Malformed("negative record count"))?;
    let mut summary = BatchSummary::EMPTY;
    let mut index = 0;
    while !src.at_end()? {
        if index == expected {
            return Err(Malformed("more records than the batch's record count"));
        }
        let sketch = scan_record(src, index, header.last_offset_delta)?;
        summary.add(&sketch);
        visit(sketch);
        index += 1;
    }
    if index != expected {
        return Err(Malformed("fewer records than the batch's record count"));
    }
    Ok(summary)
}

/// One record: its length, then every field inside that length, the last
/// header ending exactly where the length says.
#[inline]
fn scan_record(
    src: &mut impl Source,
    index: usize,
    last_offset_delta: i32,
) -> Result<RecordSketch, RecordError> {
    let len = length(src, "negative record length")?;
    let end = src.pos().saturating_add(len);
    let mut body = Body { src, end };
    // Attributes: unused in v2.
    body.skip(1)?;
    let timestamp_delta = unzigzag64(body.unsigned(64)?);
    let offset_delta = unzigzag32(body.unsigned(32)?)?;
    if offset_delta < 0 || offset_delta > last_offset_delta {
        return Err(Malformed(OFFSET_DELTA_OUT_OF_RANGE));
    }
    let has_key = body.skip_nullable("negative key length")?;
    body.skip_nullable("negative value length")?;
    let headers = body.length("negative header count")?;
    for _ in 0..headers {
        let key = body.length("negative header key length")?;
        body.skip(key)?;
        body.skip_nullable("negative header value length")?;
    }
    if body.src.pos() != end {
        return Err(Malformed("record length exceeds its fields"));
    }
    Ok(RecordSketch {
        index,
        timestamp_delta,
        has_key,
    })
}

/// A non-negative varint length.
#[inline]
fn length(src: &mut impl Source, what: &'static str) -> Result<usize, RecordError> {
    usize::try_from(unzigzag32(src.unsigned(32)?)?).map_err(|_| Malformed(what))
}

/// The fields of one record: nothing may be read past its `end`.
struct Body<'s, S> {
    src: &'s mut S,
    end: usize,
}

impl<S: Source> Body<'_, S> {
    #[inline]
    fn check(&self) -> Result<(), RecordError> {
        if self.src.pos() > self.end {
            return Err(Malformed("record truncated"));
        }
        Ok(())
    }

    #[inline]
    fn unsigned(&mut self, bits: u32) -> Result<u64, RecordError> {
        let v = self.src.unsigned(bits)?;
        self.check()?;
        Ok(v)
    }

    #[inline]
    fn length(&mut self, what: &'static str) -> Result<usize, RecordError> {
        let n = length(self.src, what)?;
        self.check()?;
        Ok(n)
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), RecordError> {
        if n > self.end.saturating_sub(self.src.pos()) {
            return Err(Malformed("record truncated"));
        }
        self.src.skip(n)
    }

    /// Step over a nullable byte field (varint length, -1 = null); whether
    /// it was present.
    #[inline]
    fn skip_nullable(&mut self, what: &'static str) -> Result<bool, RecordError> {
        let len = unzigzag32(self.unsigned(32)?)?;
        if len == -1 {
            return Ok(false);
        }
        self.skip(usize::try_from(len).map_err(|_| Malformed(what))?)?;
        Ok(true)
    }
}

//! The v2 record codec: the records inside a record batch, decoded and
//! encoded one by one.
//!
//! Owns the per-record wire format (Kafka's `DefaultRecord`), the zigzag
//! varint/varlong encoding it uses, and building whole batches from records.
//! It is for the places that must look inside batches (log compaction, tests,
//! CLI tools); the produce path checks a batch's records in place with
//! [`scan_batch`] (nothing copied), and the fetch path never looks inside.
//!
//! Record layout, after the batch header (and after decompression):
//! ```text
//! length            varint   bytes of the rest of this record
//! attributes        int8     unused, written as 0, ignored on read
//! timestampDelta    varlong
//! offsetDelta       varint
//! keyLength         varint   -1 = null key
//! key               bytes
//! valueLength       varint   -1 = null value (a tombstone)
//! value             bytes
//! headerCount       varint
//! headers           [headerKeyLength varint, headerKey, headerValueLength varint (-1 = null), value]
//! ```
//! Invariants kept by [`decode_batch`]: every record's length matches its
//! fields exactly, the records fill the payload exactly, their number equals
//! the header's `record_count`, and each offset delta lies within
//! `0..=last_offset_delta`. [`build_batch`] only produces batches that pass
//! [`validate_batch`].

use bytes::{Buf, Bytes};

use crate::compression;
use crate::error::RecordError::{self, Malformed};
use crate::record_batch::{
    self, validate_batch, BatchHeader, Compression, TimestampType, HEADER_SIZE, LOG_OVERHEAD,
};

const OFFSET_DELTA_OUT_OF_RANGE: &str = "record offset delta outside the batch's range";

/// At most this many records or headers are allocated ahead of decoding
/// them; past it a vector grows with what actually decodes. A count from the
/// wire is first bounded by the bytes present, but a decoded [`Record`]
/// takes about fifteen times its smallest wire form (a [`Header`] thirty
/// times), so a payload of minimal records at the storage layer's 64 MiB
/// decompression limit would otherwise reserve a GiB before one record is
/// read.
const PREALLOCATE_MAX: usize = 1024;

/// Capacity to reserve for `claimed` items of at least `min_wire` bytes
/// each when `available` bytes remain: no more than the bytes can hold,
/// and no more than [`PREALLOCATE_MAX`].
fn preallocate(claimed: usize, available: usize, min_wire: usize) -> usize {
    claimed
        .min(available / min_wire.max(1))
        .min(PREALLOCATE_MAX)
}

/// A record header. Keys are UTF-8 by Kafka's contract but are kept as the
/// bytes that arrived: Kafka does not reject bad UTF-8, and compaction must
/// not alter data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One record of a v2 batch, with offset and timestamp relative to the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// In wire order; a key may repeat.
    pub headers: Vec<Header>,
}

/// A decoded batch: its header plus records with absolute offset/timestamp helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub records: Vec<Record>,
}

impl DecodedBatch {
    /// The record's absolute offset, `base_offset + offset_delta` (saturating,
    /// so even a record from another batch cannot overflow it).
    pub fn offset_of(&self, r: &Record) -> i64 {
        self.header
            .base_offset
            .saturating_add(i64::from(r.offset_delta))
    }

    /// The record's timestamp, `base_timestamp + timestamp_delta`
    /// (saturating); for a LogAppendTime batch the broker's `max_timestamp`,
    /// which overrides every record's own time.
    pub fn timestamp_of(&self, r: &Record) -> i64 {
        match self.header.timestamp_type() {
            TimestampType::LogAppendTime => self.header.max_timestamp,
            TimestampType::CreateTime => {
                self.header.base_timestamp.saturating_add(r.timestamp_delta)
            }
        }
    }
}

/// Decode all records of one complete, valid batch (validated with
/// [`validate_batch`] first), decompressing with
/// [`compression::decompress`]`(.., limit)`.
///
/// Errors: [`RecordError::Batch`] if the batch itself is invalid,
/// [`RecordError::TooLarge`] if the records exceed `limit` bytes once
/// decompressed, [`RecordError::Decompress`] for a corrupt payload, and
/// [`RecordError::Malformed`] if the records do not parse, do not fill the
/// payload exactly, are not exactly `record_count` many, or have an offset
/// delta outside `0..=last_offset_delta`.
pub fn decode_batch(batch: &[u8], limit: usize) -> Result<DecodedBatch, RecordError> {
    let header = validate_batch(batch)?;
    let payload = batch.get(HEADER_SIZE..).unwrap_or_default();
    let payload = compression::decompress(header.compression()?, payload, limit)?;
    // `validate_batch` has checked that the count is not negative.
    let expected =
        usize::try_from(header.record_count).map_err(|_| Malformed("negative record count"))?;
    let mut cursor = Cursor {
        buf: Bytes::from(payload),
    };
    // Allocate for no more records than the bytes can hold, whatever the count says.
    let mut records = Vec::with_capacity(preallocate(
        expected,
        cursor.buf.len(),
        record_batch::MIN_RECORD_SIZE,
    ));
    while !cursor.buf.is_empty() {
        if records.len() == expected {
            return Err(Malformed("more records than the batch's record count"));
        }
        let record = decode_record(&mut cursor)?;
        if record.offset_delta < 0 || record.offset_delta > header.last_offset_delta {
            return Err(Malformed(OFFSET_DELTA_OUT_OF_RANGE));
        }
        records.push(record);
    }
    if records.len() != expected {
        return Err(Malformed("fewer records than the batch's record count"));
    }
    Ok(DecodedBatch { header, records })
}

/// Append the wire form of `r` to `out`.
///
/// Each key, value and header field, and the whole record, must be shorter
/// than `i32::MAX` bytes; [`build_batch`] checks this. A larger one is not
/// representable: its length is written clamped (so the record will not
/// decode), never with a panic.
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(0); // attributes: unused in v2
    write_varlong(out, r.timestamp_delta);
    write_varint(out, r.offset_delta);
    write_nullable(out, r.key.as_deref());
    write_nullable(out, r.value.as_deref());
    write_varint(out, clamp_len(r.headers.len()));
    for h in &r.headers {
        write_varint(out, clamp_len(h.key.len()));
        out.extend_from_slice(&h.key);
        write_nullable(out, h.value.as_deref());
    }
    // The length prefix is only known once the body is written.
    let mut prefix = Vec::with_capacity(5);
    write_varint(&mut prefix, clamp_len(out.len() - start));
    out.splice(start..start, prefix);
}

/// Build a complete batch (with CRC) from a header template and records.
///
/// Sets `record_count` and the batch length; keeps the template's
/// `base_offset`, `last_offset_delta`, timestamps, producer fields,
/// `partition_leader_epoch` and `attributes`, whose compression bits choose
/// the codec for the encoded records. An empty `records` is allowed (the log
/// cleaner keeps empty batches to preserve producer state). The result always
/// passes [`validate_batch`].
///
/// Errors: [`RecordError::Malformed`] if a record's offset delta lies outside
/// `0..=last_offset_delta` or the batch would not fit Kafka's 32-bit
/// lengths; [`RecordError::Batch`] if the template is unusable (unknown
/// codec, negative base offset, more records than its offset range).
pub fn build_batch(template: &BatchHeader, records: &[Record]) -> Result<Vec<u8>, RecordError> {
    build_batch_at(template, records, None)
}

/// [`build_batch`] compressed at `level` ([`compression::compress_at`]).
pub fn build_batch_at(
    template: &BatchHeader,
    records: &[Record],
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    const MAX_PAYLOAD: usize = i32::MAX as usize - (HEADER_SIZE - LOG_OVERHEAD);
    let compression = template.compression()?;
    let record_count = i32::try_from(records.len()).map_err(|_| Malformed("too many records"))?;
    let mut encoded = Vec::new();
    for r in records {
        if r.offset_delta < 0 || r.offset_delta > template.last_offset_delta {
            return Err(Malformed(OFFSET_DELTA_OUT_OF_RANGE));
        }
        encode_record(r, &mut encoded);
        // Every length written so far was exact while the total fits i32.
        if encoded.len() > MAX_PAYLOAD {
            return Err(Malformed("records too large for one batch"));
        }
    }
    let payload = match compression {
        Compression::None => encoded,
        codec => compression::compress_at(codec, level, &encoded)?,
    };
    if payload.len() > MAX_PAYLOAD {
        return Err(Malformed("records too large for one batch"));
    }
    let header = BatchHeader {
        batch_length: (HEADER_SIZE - LOG_OVERHEAD + payload.len()) as i32,
        magic: record_batch::MAGIC_V2,
        crc: 0,
        record_count,
        ..*template
    };
    let batch = record_batch::encode_batch(&header, &payload);
    validate_batch(&batch)?;
    Ok(batch)
}

/// Writes an uncompressed producer batch in place: records (without headers) are
/// encoded straight after a reserved header, which [`BatchWriter::finish`] fills
/// in — one buffer, no record structs, for producers that write many small
/// records. Offset deltas are the records' indexes.
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: i32,
}

impl BatchWriter {
    /// An empty batch with room for `capacity` bytes of records.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_SIZE + capacity);
        buf.resize(HEADER_SIZE, 0);
        BatchWriter { buf, count: 0 }
    }

    /// Append a record with no headers, `timestamp_delta` after the batch's base
    /// timestamp. Keys and values must be shorter than `i32::MAX` bytes (a longer
    /// one is written clamped and will not decode; never a panic).
    pub fn push(&mut self, timestamp_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let field = |v: Option<&[u8]>| match v {
            None => 1,
            Some(b) => unsigned_len(zigzag32(clamp_len(b.len()))) + b.len(),
        };
        // attributes, timestamp delta, offset delta, key, value, header count (0).
        let body = 1
            + unsigned_len(zigzag64(timestamp_delta))
            + unsigned_len(zigzag32(self.count))
            + field(key)
            + field(value)
            + 1;
        write_varint(&mut self.buf, clamp_len(body));
        self.buf.push(0);
        write_varlong(&mut self.buf, timestamp_delta);
        write_varint(&mut self.buf, self.count);
        write_nullable(&mut self.buf, key);
        write_nullable(&mut self.buf, value);
        self.buf.push(0);
        self.count = self.count.saturating_add(1);
    }

    /// Records pushed so far.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes of the batch so far, header included.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The finished batch: `template`'s base offset, leader epoch, attributes (whose
    /// codec must be none), timestamps and producer fields; the record count and last
    /// offset delta from the records pushed; length and CRC computed.
    pub fn finish(mut self, template: &BatchHeader) -> Vec<u8> {
        let header = BatchHeader {
            record_count: self.count,
            last_offset_delta: self.count.saturating_sub(1).max(0),
            ..*template
        };
        record_batch::finish_batch(&mut self.buf, &header);
        self.buf
    }

    /// [`finish`](Self::finish) with the records compressed in the codec of
    /// `template`'s attributes (none: as `finish`).
    pub fn finish_compressed(self, template: &BatchHeader) -> Result<Vec<u8>, RecordError> {
        let codec = template.compression()?;
        if codec == Compression::None {
            return Ok(self.finish(template));
        }
        let payload = compression::compress(codec, self.buf.get(HEADER_SIZE..).unwrap_or(&[]))?;
        let mut buf = Vec::with_capacity(HEADER_SIZE + payload.len());
        buf.resize(HEADER_SIZE, 0);
        buf.extend_from_slice(&payload);
        let compressed = BatchWriter {
            buf,
            count: self.count,
        };
        Ok(compressed.finish(template))
    }
}

/// Builds a producer-style batch, for tests, benches and tools: base offset
/// 0, offset deltas `0..n`, base timestamp from the first record, CreateTime.
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    compression: Compression,
    /// Everything but the fields `build` derives from the records.
    header: BatchHeader,
    /// Absolute timestamps, turned into deltas by `build`.
    timestamps: Vec<i64>,
    records: Vec<Record>,
}

impl RecordBatchBuilder {
    /// An empty builder for a non-idempotent producer (producer id, epoch,
    /// base sequence and partition leader epoch all -1).
    pub fn new(compression: Compression) -> Self {
        let attributes =
            record_batch::attributes(compression, TimestampType::CreateTime, false, false);
        let header = BatchHeader::template(attributes, 0, -1, -1, -1);
        RecordBatchBuilder {
            compression,
            header,
            timestamps: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Write the batch as an idempotent producer's.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.header.producer_id = producer_id;
        self.header.producer_epoch = producer_epoch;
        self.header.base_sequence = base_sequence;
        self
    }

    /// Set or clear the transactional attribute bit.
    pub fn transactional(mut self, yes: bool) -> Self {
        self.header.attributes =
            record_batch::attributes(self.compression, TimestampType::CreateTime, yes, false);
        self
    }

    /// Append a record with an absolute timestamp; its offset delta is its index.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let headers = headers.iter().map(|(k, v)| Header {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: v.map(Bytes::copy_from_slice),
        });
        self.records.push(Record {
            offset_delta: clamp_len(self.records.len()),
            timestamp_delta: 0,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers.collect(),
        });
        self.timestamps.push(timestamp);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The batch bytes: `base_timestamp` is the first record's timestamp,
    /// `max_timestamp` the largest, `last_offset_delta` is `n - 1`.
    ///
    /// Errors: [`RecordError::Malformed`] for an empty builder or timestamps
    /// too far apart for an i64 delta, and whatever [`build_batch`] reports.
    pub fn build(&self) -> Result<Vec<u8>, RecordError> {
        let timestamps = &self.timestamps;
        let (Some(&base_timestamp), Some(&max_timestamp)) =
            (timestamps.first(), timestamps.iter().max())
        else {
            return Err(Malformed("a record batch needs at least one record"));
        };
        let mut records = self.records.clone();
        for (r, ts) in records.iter_mut().zip(timestamps) {
            r.timestamp_delta = ts
                .checked_sub(base_timestamp)
                .ok_or(Malformed("timestamps too far apart"))?;
        }
        let last_offset_delta = clamp_len(records.len().saturating_sub(1));
        let template = BatchHeader {
            base_timestamp,
            max_timestamp,
            last_offset_delta,
            ..self.header
        };
        build_batch(&template, &records)
    }
}

/// Reads records from a decompressed payload; keys and values come out as
/// zero-copy slices of it.
struct Cursor {
    buf: Bytes,
}

impl Cursor {
    fn read_u8(&mut self) -> Result<u8, RecordError> {
        let b = *self.buf.first().ok_or(Malformed("record truncated"))?;
        self.buf.advance(1);
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<Bytes, RecordError> {
        if n > self.buf.len() {
            return Err(Malformed("record field runs past the record"));
        }
        Ok(self.buf.split_to(n))
    }

    fn read_unsigned(&mut self, bits: u32) -> Result<u64, RecordError> {
        let (value, used) = unsigned_at(&self.buf, bits)?;
        self.buf.advance(used);
        Ok(value)
    }

    fn read_varint(&mut self) -> Result<i32, RecordError> {
        unzigzag32(self.read_unsigned(32)?)
    }

    fn read_varlong(&mut self) -> Result<i64, RecordError> {
        Ok(unzigzag64(self.read_unsigned(64)?))
    }

    /// A varint that must not be negative: a length or a count.
    fn read_len(&mut self, what: &'static str) -> Result<usize, RecordError> {
        usize::try_from(self.read_varint()?).map_err(|_| Malformed(what))
    }

    /// A varint length and that many bytes; length -1 means null.
    fn read_nullable(&mut self, what: &'static str) -> Result<Option<Bytes>, RecordError> {
        match self.read_varint()? {
            -1 => Ok(None),
            n => Ok(Some(
                self.take(usize::try_from(n).map_err(|_| Malformed(what))?)?,
            )),
        }
    }
}

/// An unsigned value of `bits` bits in little-endian base-128 groups at the
/// front of `buf`, at most `ceil(bits / 7)` bytes: `(value, bytes used)`.
/// Longer and overflowing encodings are both rejected (Kafka's reader
/// rejects only the longer ones).
fn unsigned_at(buf: &[u8], bits: u32) -> Result<(u64, usize), RecordError> {
    let mut value = 0u64;
    let mut shift = 0u32;
    for (i, &b) in buf.iter().enumerate() {
        if shift >= bits {
            break;
        }
        let group = u64::from(b & 0x7f);
        if shift + 7 > bits && group >> (bits - shift) != 0 {
            return Err(Malformed("varint overflows its type"));
        }
        value |= group << shift;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        shift += 7;
    }
    if shift >= bits {
        Err(Malformed("varint longer than its maximum size"))
    } else {
        Err(Malformed("record truncated"))
    }
}

fn unzigzag32(raw: u64) -> Result<i32, RecordError> {
    let raw = u32::try_from(raw).map_err(|_| Malformed("varint overflows i32"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// [`unsigned_at`] with the one- and two-byte encodings (record lengths
/// and timestamp deltas of most records) decoded inline: this runs over
/// every record of every produced batch ([`scan_batch`]).
#[inline]
fn short_unsigned_at(buf: &[u8], bits: u32) -> Result<(u64, usize), RecordError> {
    match buf {
        [b0, ..] if b0 & 0x80 == 0 => Ok((u64::from(*b0), 1)),
        [b0, b1, ..] if b1 & 0x80 == 0 => Ok((u64::from(b0 & 0x7f) | u64::from(*b1) << 7, 2)),
        _ => unsigned_at(buf, bits),
    }
}

fn decode_record(cursor: &mut Cursor) -> Result<Record, RecordError> {
    let length = cursor.read_len("negative record length")?;
    let mut body = Cursor {
        buf: cursor.take(length)?,
    };
    let _attributes = body.read_u8()?; // unused in v2; Kafka ignores them on read
    let timestamp_delta = body.read_varlong()?;
    let offset_delta = body.read_varint()?;
    let key = body.read_nullable("negative key length")?;
    let value = body.read_nullable("negative value length")?;
    let count = body.read_len("negative header count")?;
    // A header takes at least two bytes: allocate for no more than fit.
    let mut headers = Vec::with_capacity(preallocate(count, body.buf.len(), 2));
    for _ in 0..count {
        let key_len = body.read_len("negative header key length")?;
        let key = body.take(key_len)?;
        let value = body.read_nullable("negative header value length")?;
        headers.push(Header { key, value });
    }
    if !body.buf.is_empty() {
        return Err(Malformed("record length exceeds its fields"));
    }
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

fn clamp_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Bytes `v` takes as an unsigned varint.
fn unsigned_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, zigzag32(v));
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, zigzag64(v));
}

fn write_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, clamp_len(b.len()));
            out.extend_from_slice(b);
        }
    }
}

mod scan;
pub use scan::{scan_batch, sketches, BatchSummary, RecordSketch};

#[cfg(test)]
mod tests;

//! A zero-copy view over Kafka v2 record-batch bytes (magic 2, KIP-98).
//!
//! The broker stores and serves batches exactly as the client sent them; this
//! module reads the 61-byte header, validates a batch (magic, lengths, CRC-32C,
//! record count) and rewrites the few fields a broker may change in place,
//! without ever decoding the records.
//!
//! Layout (big-endian):
//! ```text
//!  0  base_offset             i64
//!  8  batch_length            i32   bytes that follow this field
//! 12  partition_leader_epoch  i32
//! 16  magic                   i8    always 2
//! 17  crc                     u32   CRC-32C of bytes 21..end
//! 21  attributes              i16
//! 23  last_offset_delta       i32
//! 27  base_timestamp          i64
//! 35  max_timestamp           i64
//! 43  producer_id             i64
//! 51  producer_epoch          i16
//! 53  base_sequence           i32
//! 57  record_count            i32
//! 61  records...
//! ```
//! Base offset and leader epoch lie outside the CRC, so rewriting them keeps
//! the checksum valid; attributes and timestamps lie inside it.

use crate::error::BatchError;

/// Size of the fixed v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before the part that `batch_length` counts (base offset + length).
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this broker accepts.
pub const MAGIC_V2: i8 = 2;
/// The smallest possible encoded record: length, attributes, timestamp delta,
/// offset delta, key length, value length, header count — one byte each.
pub const MIN_RECORD_SIZE: usize = 7;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction (KIP-98).
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch holds a control record (a transaction marker).
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6 (KIP-534): the base timestamp holds the delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec named by the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The attribute bits for this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for attribute bits, or `None` for an unknown id (5..=7).
    pub fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Whether a batch's timestamps are the producer's or the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The fixed header of a v2 record batch, copied out of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// The header a producer writes for a new batch (base offset 0, no leader
    /// epoch, magic 2, timestamps both `timestamp`); the length, CRC, record
    /// count and last offset delta are left 0 for the encoder to fill in.
    pub fn template(
        attributes: i16,
        timestamp: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count: 0,
        }
    }

    /// Parse the header at the start of `buf`. Checks that the header is
    /// complete, the magic is 2 and `batch_length` is plausible; it does not
    /// require the rest of the batch to be present (see [`validate_batch`]).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::TooShort {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = read_i32(buf, BATCH_LENGTH);
        if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadBatchLength(batch_length));
        }
        let header = BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH),
            magic,
            crc: read_i32(buf, CRC) as u32,
            attributes: read_i16(buf, ATTRIBUTES),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP),
            producer_id: read_i64(buf, PRODUCER_ID),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH),
            base_sequence: read_i32(buf, BASE_SEQUENCE),
            record_count: read_i32(buf, RECORD_COUNT),
        };
        if header.last_offset_delta < 0 {
            return Err(BatchError::BadLastOffsetDelta(header.last_offset_delta));
        }
        if header.base_offset < 0
            || header
                .base_offset
                .checked_add(header.last_offset_delta as i64)
                .is_none()
        {
            return Err(BatchError::BadBaseOffset(header.base_offset));
        }
        Ok(header)
    }

    /// Total bytes of the batch, including base offset and length fields.
    pub fn size_in_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record the batch covers (`base + last_offset_delta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The offset that follows this batch (saturating: a header may claim a last
    /// offset of `i64::MAX`, which [`BatchHeader::parse`] lets through).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec, or an error for an unknown id.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        let id = self.attributes & COMPRESSION_MASK;
        Compression::from_id(id).ok_or(BatchError::UnknownCompression(id))
    }

    /// This header with its codec bits set to `codec` (for a batch about
    /// to be rebuilt with [`crate::records::build_batch`]).
    pub fn with_compression(self, codec: Compression) -> Self {
        BatchHeader {
            attributes: (self.attributes & !COMPRESSION_MASK) | codec.id(),
            ..self
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// KIP-534: the base timestamp holds the delete horizon of tombstones.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Validate one complete batch: the header (see [`BatchHeader::parse`]),
/// `buf.len()` equal to the declared size, the CRC-32C, and a record count that
/// the offsets and (for uncompressed batches) the bytes can hold.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let size = header.size_in_bytes();
    if size != buf.len() {
        return Err(BatchError::LengthMismatch {
            declared: size,
            actual: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let compression = header.compression()?;
    check_record_count(&header, compression, size - HEADER_SIZE)?;
    Ok(header)
}

fn check_record_count(
    header: &BatchHeader,
    compression: Compression,
    records_bytes: usize,
) -> Result<(), BatchError> {
    let count = header.record_count;
    if count < 0 || count as i64 > header.last_offset_delta as i64 + 1 {
        return Err(BatchError::BadRecordCount {
            count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if compression == Compression::None
        && (count as usize).saturating_mul(MIN_RECORD_SIZE) > records_bytes
    {
        return Err(BatchError::BadRecordCount {
            count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

/// Validate a batch freshly produced by a client: everything
/// [`validate_batch`] checks, plus at least one record and a dense offset
/// range (`last_offset_delta == record_count - 1`), since only the broker's
/// cleaner may leave gaps.
pub fn validate_produced_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_batch(buf)?;
    check_produced(&header)?;
    Ok(header)
}

/// The producer-only part of [`validate_produced_batch`], for a header that
/// [`validate_batch`] already accepted (saves a second CRC pass). Control
/// batches are refused: only the broker writes transaction markers (Kafka's
/// `LogValidator` for `AppendOrigin.CLIENT`).
pub fn check_produced(header: &BatchHeader) -> Result<(), BatchError> {
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    // Kafka's LogValidator: an idempotent batch needs a sequence.
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::MissingSequence {
            producer_id: header.producer_id,
            sequence: header.base_sequence,
        });
    }
    check_dense(header)
}

/// At least one record and a dense offset range (`last_offset_delta ==
/// record_count - 1`): what every freshly written batch has, the broker's own
/// control batches included; only the cleaner may leave gaps.
pub fn check_dense(header: &BatchHeader) -> Result<(), BatchError> {
    if header.record_count < 1 || header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::BadRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

/// Iterates over the batches of a concatenated record set (a produce request's
/// `records`, or a segment read). Yields the byte range of each batch with its
/// validated header; stops after the first error.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(std::ops::Range<usize>, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = BatchHeader::parse(rest).and_then(|h| {
            let size = h.size_in_bytes();
            if size > rest.len() {
                return Err(BatchError::TooShort {
                    needed: size,
                    available: rest.len(),
                });
            }
            let header = validate_batch(&rest[..size])?;
            Ok((self.pos..self.pos + size, header))
        });
        match &result {
            Ok((range, _)) => self.pos = range.end,
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

/// The declared total size of the batch starting at `buf` (base offset and
/// length fields included), from its first 12 bytes; `None` if fewer are there
/// or the length is negative.
pub fn peek_batch_size(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let len = read_i32(buf, BATCH_LENGTH);
    if len < 0 {
        return None;
    }
    Some(LOG_OVERHEAD + len as usize)
}

/// Rewrite the base offset in place (outside the CRC). `buf` must hold at
/// least a header; shorter buffers are left alone and reported.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    ensure_header(buf)?;
    buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Rewrite the partition leader epoch in place (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    ensure_header(buf)?;
    buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Stamp a batch with the broker's append time (topic config
/// `message.timestamp.type=LogAppendTime`): sets the timestamp-type bit and
/// the max timestamp, then recomputes the CRC, as Kafka's `setMaxTimestamp`.
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    ensure_header(buf)?;
    let attributes = read_i16(buf, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    set_max_timestamp(buf, timestamp)
}

/// Set the batch's max timestamp in place and recompute the CRC (Kafka's
/// `DefaultRecordBatch.setMaxTimestamp`); the timestamp type is kept.
pub fn set_max_timestamp(buf: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    ensure_header(buf)?;
    buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    update_crc(buf);
    Ok(())
}

/// Recompute and store the CRC-32C over bytes 21..end.
pub fn update_crc(buf: &mut [u8]) {
    if buf.len() < HEADER_SIZE {
        return;
    }
    let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn ensure_header(buf: &[u8]) -> Result<(), BatchError> {
    if buf.len() < HEADER_SIZE {
        return Err(BatchError::TooShort {
            needed: HEADER_SIZE,
            available: buf.len(),
        });
    }
    Ok(())
}

// Callers guarantee `buf.len() >= at + N`; every use is behind a length check.
fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Build the raw bytes of a batch with the given header fields and opaque
/// `records` payload, computing length and CRC. Used by the record encoder
/// and by tests.
pub fn encode_batch(header: &BatchHeader, records: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_SIZE + records.len());
    buf.resize(HEADER_SIZE, 0);
    buf.extend_from_slice(records);
    finish_batch(&mut buf, header);
    buf
}

/// Fill the header of `buf` — [`HEADER_SIZE`] bytes reserved before its records —
/// from `header` (its batch length taken from `buf`'s size, magic 2) and compute
/// the CRC. Does nothing to a buffer shorter than a header.
pub fn finish_batch(buf: &mut [u8], header: &BatchHeader) {
    if buf.len() < HEADER_SIZE {
        return;
    }
    let batch_length = i32::try_from(buf.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    buf[BASE_OFFSET..BATCH_LENGTH].copy_from_slice(&header.base_offset.to_be_bytes());
    buf[BATCH_LENGTH..PARTITION_LEADER_EPOCH].copy_from_slice(&batch_length.to_be_bytes());
    buf[PARTITION_LEADER_EPOCH..MAGIC]
        .copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    buf[MAGIC] = MAGIC_V2 as u8;
    buf[ATTRIBUTES..LAST_OFFSET_DELTA].copy_from_slice(&header.attributes.to_be_bytes());
    buf[LAST_OFFSET_DELTA..BASE_TIMESTAMP].copy_from_slice(&header.last_offset_delta.to_be_bytes());
    buf[BASE_TIMESTAMP..MAX_TIMESTAMP].copy_from_slice(&header.base_timestamp.to_be_bytes());
    buf[MAX_TIMESTAMP..PRODUCER_ID].copy_from_slice(&header.max_timestamp.to_be_bytes());
    buf[PRODUCER_ID..PRODUCER_EPOCH].copy_from_slice(&header.producer_id.to_be_bytes());
    buf[PRODUCER_EPOCH..BASE_SEQUENCE].copy_from_slice(&header.producer_epoch.to_be_bytes());
    buf[BASE_SEQUENCE..RECORD_COUNT].copy_from_slice(&header.base_sequence.to_be_bytes());
    buf[RECORD_COUNT..HEADER_SIZE].copy_from_slice(&header.record_count.to_be_bytes());
    update_crc(buf);
}

/// Attribute bits for a batch with these properties.
pub fn attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
) -> i16 {
    let mut a = compression.id();
    if timestamp_type == TimestampType::LogAppendTime {
        a |= TIMESTAMP_TYPE_BIT;
    }
    if transactional {
        a |= TRANSACTIONAL_BIT;
    }
    if control {
        a |= CONTROL_BIT;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_005,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: count,
        }
    }

    fn sample() -> Vec<u8> {
        // Three minimal records' worth of opaque payload.
        encode_batch(&header(3), &[0u8; 3 * MIN_RECORD_SIZE])
    }

    #[test]
    fn parses_fields_written_by_encoder() {
        let buf = sample();
        let h = validate_batch(&buf).unwrap();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset(), 2);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(h.size_in_bytes(), buf.len());
        assert_eq!(h.compression().unwrap(), Compression::None);
    }

    #[test]
    fn a_batch_ending_at_the_largest_offset_has_a_next_offset_without_overflow() {
        let mut buf = sample();
        set_base_offset(&mut buf, i64::MAX - 2).unwrap();
        let h = BatchHeader::parse(&buf).unwrap();
        assert_eq!(h.last_offset(), i64::MAX);
        assert_eq!(h.next_offset(), i64::MAX);
    }

    #[test]
    fn rewriting_offset_and_epoch_keeps_crc_valid() {
        let mut buf = sample();
        set_base_offset(&mut buf, 42).unwrap();
        set_partition_leader_epoch(&mut buf, 7).unwrap();
        let h = validate_batch(&buf).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn log_append_time_rewrites_timestamp_and_crc() {
        let mut buf = sample();
        set_log_append_time(&mut buf, 99_999).unwrap();
        let h = validate_batch(&buf).unwrap();
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn flipped_payload_bit_fails_crc() {
        let mut buf = sample();
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(matches!(
            validate_batch(&buf),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn rejects_wrong_magic_and_short_buffers() {
        let mut buf = sample();
        buf[MAGIC] = 1;
        assert_eq!(validate_batch(&buf), Err(BatchError::UnsupportedMagic(1)));
        assert!(matches!(
            validate_batch(&sample()[..30]),
            Err(BatchError::TooShort { .. })
        ));
        let mut long = sample();
        long.push(0);
        assert!(matches!(
            validate_batch(&long),
            Err(BatchError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn rejects_record_count_the_bytes_cannot_hold() {
        let buf = encode_batch(&header(100), &[0u8; 10]);
        assert!(matches!(
            validate_batch(&buf),
            Err(BatchError::BadRecordCount { .. })
        ));
    }

    #[test]
    fn produced_batch_must_be_dense() {
        let mut h = header(3);
        h.last_offset_delta = 5;
        let buf = encode_batch(&h, &[0u8; 3 * MIN_RECORD_SIZE]);
        assert!(validate_batch(&buf).is_ok());
        assert!(validate_produced_batch(&buf).is_err());
    }

    #[test]
    fn iterates_concatenated_batches_and_stops_at_torn_tail() {
        let mut set = sample();
        set.extend_from_slice(&sample());
        let torn = sample();
        set.extend_from_slice(&torn[..40]);
        let results: Vec<_> = BatchIter::new(&set).collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(results[2].is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batch(&bytes);
            let _ = BatchHeader::parse(&bytes);
            let _ = BatchIter::new(&bytes).count();
            let _ = peek_batch_size(&bytes);
        }

        #[test]
        fn corrupting_a_valid_batch_is_detected_or_harmless(
            pos in 0usize..(HEADER_SIZE + 3 * MIN_RECORD_SIZE),
            flip in 1u8..=255,
        ) {
            let mut buf = sample();
            buf[pos] ^= flip;
            // Bytes outside the CRC (offset, length, epoch) may still parse, but
            // every byte the CRC covers must be caught.
            if pos >= ATTRIBUTES {
                prop_assert!(validate_batch(&buf).is_err());
            } else {
                let _ = validate_batch(&buf);
            }
        }
    }
}

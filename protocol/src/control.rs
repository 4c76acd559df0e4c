//! Transaction markers: Kafka's control batches (KIP-98, `EndTransactionMarker`
//! and `ControlRecordType`).
//!
//! A control batch has the control and transactional attribute bits set, the
//! producer id and epoch of the transaction it ends, base sequence -1, is
//! never compressed, and holds exactly one record (none once the cleaner has
//! emptied it). That record's key is `version: i16 (0), type: i16` (0 =
//! ABORT, 1 = COMMIT, others such as KRaft's LEADER_CHANGE = 2 are not
//! transaction markers); for ABORT/COMMIT its value is
//! `version: i16 (0), coordinator_epoch: i32`.
//!
//! Parsing is bounded by the bytes given and never panics: before the broker
//! refuses them, these bytes may come from any producer.

use bytes::Bytes;

use crate::error::{BatchError, RecordError};
use crate::record_batch::{self, validate_batch, BatchHeader, Compression, TimestampType};
use crate::records::{self, Record};

/// Key of a control record: version + type (Kafka's
/// `ControlRecordType.CURRENT_CONTROL_RECORD_KEY_SIZE`).
const KEY_SIZE: usize = 4;
/// Value of an end-transaction marker: version + coordinator epoch (Kafka's
/// `EndTransactionMarker.CURRENT_END_TXN_MARKER_VALUE_SIZE`).
const VALUE_SIZE: usize = 6;
const ABORT_TYPE: i16 = 0;
const COMMIT_TYPE: i16 = 1;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn type_id(self) -> i16 {
        match self {
            ControlType::Abort => ABORT_TYPE,
            ControlType::Commit => COMMIT_TYPE,
        }
    }
}

/// The marker in a complete control batch: `Some((kind, coordinator_epoch))`
/// for ABORT/COMMIT, `None` for a control batch of another type or one the
/// cleaner emptied.
///
/// Errors: whatever [`validate_batch`] finds (lengths, CRC, ...), and
/// [`BatchError::InvalidControlBatch`] for a batch that is not a control
/// batch, is compressed, holds more than one record, or whose record's key
/// or value is too short or has a negative version. Newer versions (> 0) are
/// read for the fields version 0 has, as Kafka does.
pub fn parse_control_marker(batch: &[u8]) -> Result<Option<(ControlType, i32)>, BatchError> {
    let header = validate_batch(batch)?;
    if !header.is_control() {
        return Err(BatchError::InvalidControlBatch("not a control batch"));
    }
    if header.compression()? != Compression::None {
        return Err(BatchError::InvalidControlBatch(
            "control batch is compressed",
        ));
    }
    match header.record_count {
        0 => return Ok(None),
        1 => {}
        _ => {
            return Err(BatchError::InvalidControlBatch(
                "more than one control record",
            ))
        }
    }
    // Uncompressed: decoding copies at most the batch's own bytes.
    let decoded = records::decode_batch(batch, batch.len()).map_err(|e| match e {
        RecordError::Batch(b) => b,
        _ => BatchError::InvalidControlBatch("control record does not decode"),
    })?;
    let Some(record) = decoded.records.first() else {
        return Ok(None);
    };
    let key = record
        .key
        .as_deref()
        .filter(|k| k.len() >= KEY_SIZE)
        .ok_or(BatchError::InvalidControlBatch(
            "control record key too short",
        ))?;
    if be_i16(key, 0) < 0 {
        return Err(BatchError::InvalidControlBatch(
            "negative control record version",
        ));
    }
    let kind = match be_i16(key, 2) {
        ABORT_TYPE => ControlType::Abort,
        COMMIT_TYPE => ControlType::Commit,
        _ => return Ok(None),
    };
    let value = record
        .value
        .as_deref()
        .filter(|v| v.len() >= VALUE_SIZE)
        .ok_or(BatchError::InvalidControlBatch(
            "end transaction marker too short",
        ))?;
    if be_i16(value, 0) < 0 {
        return Err(BatchError::InvalidControlBatch(
            "negative end transaction marker version",
        ));
    }
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Ok(Some((kind, coordinator_epoch)))
}

/// A complete control batch ending the transaction of `producer_id` /
/// `producer_epoch`: base offset 0 (the log assigns the real one), leader
/// epoch -1, base sequence -1, one record at `timestamp_ms`, CRC valid.
pub fn build_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_SIZE);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.type_id().to_be_bytes());
    let mut value = Vec::with_capacity(VALUE_SIZE);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        offset_delta: 0,
        timestamp_delta: 0,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
    };
    let attributes =
        record_batch::attributes(Compression::None, TimestampType::CreateTime, true, true);
    let header = BatchHeader {
        record_count: 1,
        ..BatchHeader::template(attributes, timestamp_ms, producer_id, producer_epoch, -1)
    };
    let mut records = Vec::with_capacity(32);
    records::encode_record(&record, &mut records);
    record_batch::encode_batch(&header, &records)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    match b.get(at..at + 2) {
        Some(s) => i16::from_be_bytes([s[0], s[1]]),
        None => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{check_dense, check_produced, validate_produced_batch, CONTROL_BIT};
    use crate::records::RecordBatchBuilder;
    use proptest::prelude::*;

    #[test]
    fn built_marker_has_kafkas_layout() {
        let b = build_control_batch(42, 3, ControlType::Commit, 7, 1_000);
        let h = validate_batch(&b).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        assert_eq!(
            (h.record_count, h.last_offset_delta, h.base_offset),
            (1, 0, 0)
        );
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert_eq!(h.max_timestamp, 1_000);
        let d = records::decode_batch(&b, 1 << 20).unwrap();
        let r = &d.records[0];
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 7][..]));
        assert!(check_dense(&h).is_ok());
    }

    #[test]
    fn abort_and_commit_round_trip() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            for epoch in [0, 5, -1, i32::MAX] {
                let b = build_control_batch(9, 1, kind, epoch, 5);
                assert_eq!(parse_control_marker(&b), Ok(Some((kind, epoch))));
            }
        }
    }

    fn control_with(key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new(Compression::None)
            .producer(1, 0, -1)
            .transactional(true);
        b.push(0, Some(key), value, &[]);
        let mut bytes = b.build().unwrap();
        let attrs = i16::from_be_bytes([bytes[21], bytes[22]]) | CONTROL_BIT;
        bytes[21..23].copy_from_slice(&attrs.to_be_bytes());
        record_batch::update_crc(&mut bytes);
        bytes
    }

    #[test]
    fn other_control_types_are_not_markers() {
        // KRaft's LEADER_CHANGE (2) and an unknown future type.
        assert_eq!(
            parse_control_marker(&control_with(&[0, 0, 0, 2], Some(b"x"))),
            Ok(None)
        );
        assert_eq!(
            parse_control_marker(&control_with(&[0, 0, 0x7f, 0], None)),
            Ok(None)
        );
    }

    #[test]
    fn rejects_malformed_markers() {
        let short_key = control_with(&[0, 0, 0], Some(&[0, 0, 0, 0, 0, 1]));
        let short_value = control_with(&[0, 0, 0, 1], Some(&[0, 0, 0]));
        let null_value = control_with(&[0, 0, 0, 0], None);
        let negative_version = control_with(&[0xff, 0xff, 0, 0], Some(&[0, 0, 0, 0, 0, 1]));
        for b in [short_key, short_value, null_value, negative_version] {
            assert!(matches!(
                parse_control_marker(&b),
                Err(BatchError::InvalidControlBatch(_))
            ));
        }
        let data = RecordBatchBuilder::new(Compression::None);
        let mut data = data;
        data.push(0, Some(b"k"), Some(b"v"), &[]);
        assert!(matches!(
            parse_control_marker(&data.build().unwrap()),
            Err(BatchError::InvalidControlBatch("not a control batch"))
        ));
    }

    #[test]
    fn newer_marker_versions_are_read_for_known_fields() {
        let b = control_with(&[0, 1, 0, 0], Some(&[0, 1, 0, 0, 0, 9, 0xaa]));
        assert_eq!(parse_control_marker(&b), Ok(Some((ControlType::Abort, 9))));
    }

    #[test]
    fn rejects_truncated_markers() {
        let b = build_control_batch(1, 0, ControlType::Abort, 3, 0);
        for len in 0..b.len() {
            assert!(parse_control_marker(&b[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn producers_cannot_send_control_batches() {
        let b = build_control_batch(1, 0, ControlType::Commit, 0, 0);
        assert_eq!(
            validate_produced_batch(&b),
            Err(BatchError::ControlBatchFromClient)
        );
        let h = validate_batch(&b).unwrap();
        assert_eq!(check_produced(&h), Err(BatchError::ControlBatchFromClient));
    }

    proptest! {
        #[test]
        fn marker_round_trips(pid in 0i64.., epoch in 0i16.., commit: bool, ce: i32, ts in 0i64..i64::MAX / 2) {
            let kind = if commit { ControlType::Commit } else { ControlType::Abort };
            let b = build_control_batch(pid, epoch, kind, ce, ts);
            prop_assert_eq!(parse_control_marker(&b), Ok(Some((kind, ce))));
            let h = validate_batch(&b).unwrap();
            prop_assert_eq!((h.producer_id, h.producer_epoch), (pid, epoch));
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_control_marker(&bytes);
        }

        #[test]
        fn corrupted_markers_are_refused_or_harmless(pos in 21usize..80, flip in 1u8..=255) {
            let mut b = build_control_batch(1, 0, ControlType::Abort, 3, 0);
            if let Some(byte) = b.get_mut(pos) {
                *byte ^= flip;
                // Bytes under the CRC are caught by it.
                prop_assert!(parse_control_marker(&b).is_err());
            }
        }
    }
}

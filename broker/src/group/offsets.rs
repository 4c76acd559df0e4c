//! The `__consumer_offsets` topic: which partition coordinates a group,
//! and the records group state and committed offsets are stored as.
//!
//! A record's key says what it is about and its value is the latest state
//! (a null value deletes it), so log compaction keeps exactly the current
//! state: `["offset", group, topic, partition]` → [`CommittedOffset`] and
//! `["group", group]` → [`GroupSnapshot`] (a classic group) and
//! `["cgroup", group]` → [`GroupData`] (a KIP-848 consumer group: group and
//! assignment epochs, members with their subscriptions, epochs, assigned
//! and pending-revocation partitions, and the target assignment), all
//! JSON. (Kafka uses its own binary schemas here, split into
//! ConsumerGroupMetadata / MemberMetadata / TargetAssignment /
//! CurrentMemberAssignment records; nothing outside the broker reads these
//! records, and one record per consumer group keeps a compacted partition
//! at exactly the current state.)
//!
//! Offsets committed in a transaction (TxnOffsetCommit, KIP-98) are the same
//! records in a transactional batch of the producer; the COMMIT or ABORT
//! control batch that ends the transaction follows later in the partition.
//! [`decode_batches`] reports both, so a replay can keep such offsets
//! pending until their marker.

use bytes::Bytes;
#[cfg(test)]
use rivulet_protocol::control::build_control_batch;
use rivulet_protocol::control::{parse_control_marker, ControlType};
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::{self, RecordBatchBuilder};
use serde::{Deserialize, Serialize};

use super::consumer::GroupData;
use super::types::GroupSnapshot;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A committed offset (Kafka's OffsetAndMetadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// What one `__consumer_offsets` record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
    /// A KIP-848 consumer group's whole state (`None`: it is gone).
    ConsumerGroup {
        group: String,
        value: Option<Box<GroupData>>,
    },
}

/// The offsets-topic partition of `group`: Java's `String.hashCode`, made
/// non-negative, modulo the partition count — as Kafka does, so operators'
/// expectations carry over.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let non_negative = h & 0x7fff_ffff;
    non_negative % partitions.max(1)
}

fn key_of(r: &OffsetsRecord) -> Vec<u8> {
    let v = match r {
        OffsetsRecord::Offset {
            group,
            topic,
            partition,
            ..
        } => serde_json::json!(["offset", group, topic, partition]),
        OffsetsRecord::Group { group, .. } => serde_json::json!(["group", group]),
        OffsetsRecord::ConsumerGroup { group, .. } => serde_json::json!(["cgroup", group]),
    };
    v.to_string().into_bytes()
}

fn value_of(r: &OffsetsRecord) -> Option<Vec<u8>> {
    match r {
        OffsetsRecord::Offset { value, .. } => {
            value.as_ref().and_then(|v| serde_json::to_vec(v).ok())
        }
        OffsetsRecord::Group { value, .. } => {
            value.as_ref().and_then(|v| serde_json::to_vec(v).ok())
        }
        OffsetsRecord::ConsumerGroup { value, .. } => {
            value.as_ref().and_then(|v| serde_json::to_vec(v).ok())
        }
    }
}

/// One producer-style record batch holding `records`.
pub fn encode_batch(records: &[OffsetsRecord], now_ms: i64) -> Option<Bytes> {
    encode_with(RecordBatchBuilder::new(Compression::None), records, now_ms)
}

/// One transactional batch of `records` for a TxnOffsetCommit: producer id
/// and epoch of the transaction, no sequence (Kafka writes these with
/// `RecordBatch.NO_SEQUENCE`, the coordinator being the writer), so they
/// stay pending until the transaction's marker.
pub fn encode_txn_batch(
    records: &[OffsetsRecord],
    producer_id: i64,
    producer_epoch: i16,
    now_ms: i64,
) -> Option<Bytes> {
    let builder = RecordBatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true);
    encode_with(builder, records, now_ms)
}

fn encode_with(mut b: RecordBatchBuilder, records: &[OffsetsRecord], now_ms: i64) -> Option<Bytes> {
    for r in records {
        let key = key_of(r);
        let value = value_of(r);
        b.push(now_ms, Some(&key), value.as_deref(), &[]);
    }
    b.build().ok().map(Bytes::from)
}

/// Decode one stored record; `None` for anything that is not ours.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetsRecord> {
    let k: serde_json::Value = serde_json::from_slice(key).ok()?;
    let parts = k.as_array()?;
    match parts.first()?.as_str()? {
        "offset" => Some(OffsetsRecord::Offset {
            group: parts.get(1)?.as_str()?.to_string(),
            topic: parts.get(2)?.as_str()?.to_string(),
            partition: i32::try_from(parts.get(3)?.as_i64()?).ok()?,
            value: match value {
                Some(v) => Some(serde_json::from_slice(v).ok()?),
                None => None,
            },
        }),
        "group" => Some(OffsetsRecord::Group {
            group: parts.get(1)?.as_str()?.to_string(),
            value: match value {
                Some(v) => Some(serde_json::from_slice(v).ok()?),
                None => None,
            },
        }),
        "cgroup" => Some(OffsetsRecord::ConsumerGroup {
            group: parts.get(1)?.as_str()?.to_string(),
            value: match value {
                Some(v) => Some(serde_json::from_slice(v).ok()?),
                None => None,
            },
        }),
        _ => None,
    }
}

/// What a run of `__consumer_offsets` batches says, entry by entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// One of our records at log offset `offset`; `producer_id` is set when
    /// its batch is transactional (pending until that producer's marker).
    Record {
        offset: i64,
        producer_id: Option<i64>,
        record: OffsetsRecord,
    },
    /// A transaction marker (control batch) of `producer_id`.
    Marker { producer_id: i64, commit: bool },
}

/// Every entry of a run of batches read from the log, in order. Batches
/// that cannot be decoded and records that are not ours are skipped.
pub fn decode_batches(bytes: &[u8]) -> Vec<LogEntry> {
    let mut out = Vec::new();
    for item in rivulet_protocol::record_batch::BatchIter::new(bytes) {
        let Ok((range, header)) = item else { break };
        let Some(batch) = bytes.get(range) else { break };
        if header.is_control() {
            // Kafka reads only a control batch's first record: the marker.
            if let Ok(Some((kind, _))) = parse_control_marker(batch) {
                out.push(LogEntry::Marker {
                    producer_id: header.producer_id,
                    commit: kind == ControlType::Commit,
                });
            }
            continue;
        }
        let Ok(decoded) = records::decode_batch(batch, 64 * 1024 * 1024) else {
            continue;
        };
        let producer_id = header.is_transactional().then_some(header.producer_id);
        for r in &decoded.records {
            if let Some(key) = &r.key {
                if let Some(record) = decode(key, r.value.as_deref()) {
                    out.push(LogEntry::Record {
                        offset: decoded.offset_of(r),
                        producer_id,
                        record,
                    });
                }
            }
        }
    }
    out
}

/// A COMMIT or ABORT marker of the producer, for tests: the transaction
/// coordinator writes the real ones.
#[cfg(test)]
pub(crate) fn marker_batch(producer_id: i64, producer_epoch: i16, commit: bool) -> Bytes {
    let kind = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    Bytes::from(build_control_batch(producer_id, producer_epoch, kind, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        assert_eq!(partition_for("", 10), 0);
        for g in [
            "a",
            "consumer-group-1",
            "ü-unicode",
            "x".repeat(300).as_str(),
        ] {
            let p = partition_for(g, 7);
            assert!((0..7).contains(&p));
        }
    }

    #[test]
    fn records_round_trip_through_a_batch() {
        let recs = vec![
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 1,
                    metadata: Some("m".into()),
                    commit_timestamp: 7,
                }),
            },
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            OffsetsRecord::Group {
                group: "g".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&recs, 1).unwrap();
        let decoded: Vec<OffsetsRecord> = decode_batches(&batch)
            .into_iter()
            .map(|e| match e {
                LogEntry::Record {
                    producer_id: None,
                    record,
                    ..
                } => record,
                other => panic!("not a plain record: {other:?}"),
            })
            .collect();
        assert_eq!(decoded, recs);
        assert_eq!(decode(b"garbage", None), None);
        assert_eq!(decode(b"[\"other\"]", None), None);
    }

    #[test]
    fn transactional_batches_and_markers_are_told_apart() {
        use rivulet_protocol::record_batch::{self, BatchHeader};
        let rec = |p: i32| OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: p,
            value: None,
        };
        let mut log = Vec::new();
        let mut plain = encode_batch(&[rec(0)], 1).unwrap().to_vec();
        record_batch::set_base_offset(&mut plain, 10).unwrap();
        log.extend(plain);
        let mut txn = encode_txn_batch(&[rec(1), rec(2)], 7, 3, 1)
            .unwrap()
            .to_vec();
        record_batch::set_base_offset(&mut txn, 11).unwrap();
        let h = BatchHeader::parse(&txn).unwrap();
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 3, -1)
        );
        log.extend(txn);
        for (commit, at) in [(true, 13), (false, 14)] {
            let mut marker = marker_batch(7, 3, commit).to_vec();
            record_batch::set_base_offset(&mut marker, at).unwrap();
            log.extend(marker);
        }
        let entries = decode_batches(&log);
        let at = |offset: i64, producer_id: Option<i64>, p: i32| LogEntry::Record {
            offset,
            producer_id,
            record: rec(p),
        };
        assert_eq!(
            entries,
            vec![
                at(10, None, 0),
                at(11, Some(7), 1),
                at(12, Some(7), 2),
                LogEntry::Marker {
                    producer_id: 7,
                    commit: true
                },
                LogEntry::Marker {
                    producer_id: 7,
                    commit: false
                },
            ]
        );
    }
}

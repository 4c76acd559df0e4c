//! The `__consumer_offsets` topic: which partition coordinates a group,
//! and the records group state and committed offsets are stored as.
//!
//! A record's key says what it is about and its value is the latest state
//! (a null value deletes it), so log compaction keeps exactly the current
//! state: `["offset", group, topic, partition]` → [`CommittedOffset`] and
//! `["group", group]` → [`GroupSnapshot`], both JSON. (Kafka uses its own
//! binary schemas here; nothing outside the broker reads these records.)

use bytes::Bytes;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::{self, RecordBatchBuilder};
use serde::{Deserialize, Serialize};

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
    }
}

/// One producer-style record batch holding `records`.
pub fn encode_batch(records: &[OffsetsRecord], now_ms: i64) -> Option<Bytes> {
    let mut b = RecordBatchBuilder::new(Compression::None);
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
        _ => None,
    }
}

/// Every record of a run of batches read from the log, in order.
pub fn decode_batches(bytes: &[u8]) -> Vec<OffsetsRecord> {
    let mut out = Vec::new();
    for item in rivulet_protocol::record_batch::BatchIter::new(bytes) {
        let Ok((range, header)) = item else { break };
        if header.is_control() {
            continue;
        }
        let Some(batch) = bytes.get(range) else { break };
        let Ok(decoded) = records::decode_batch(batch, 64 * 1024 * 1024) else {
            continue;
        };
        for r in &decoded.records {
            if let Some(key) = &r.key {
                if let Some(rec) = decode(key, r.value.as_deref()) {
                    out.push(rec);
                }
            }
        }
    }
    out
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
        assert_eq!(decode_batches(&batch), recs);
        assert_eq!(decode(b"garbage", None), None);
        assert_eq!(decode(b"[\"other\"]", None), None);
    }
}

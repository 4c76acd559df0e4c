//! Records of `__transaction_state`: one per transition of a transactional
//! id, keyed by the id (the topic is compacted, so the latest state of each
//! id survives), a null value when the id expired. Like
//! `__consumer_offsets` ([`crate::group::offsets`]), keys and values are
//! JSON: the topic is internal to Rivulet and readable with any consumer.
//!
//! The partition of a transactional id is Kafka's: `abs(javaHashCode(id)) %
//! transaction.state.log.num.partitions`.

use bytes::Bytes;
use rivulet_protocol::record_batch::Compression;
use rivulet_protocol::records::{self, RecordBatchBuilder};

use super::metadata::TxnTransit;

pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's `TransactionStateManager.partitionFor`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::offsets::partition_for(transactional_id, partitions)
}

/// A decoded record: the id and its state, `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnTransit>,
}

fn key_of(id: &str) -> Vec<u8> {
    serde_json::json!(["txn", id]).to_string().into_bytes()
}

/// One record batch holding `records`.
pub fn encode_batch(records: &[TxnRecord], now_ms: i64) -> Option<Bytes> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for r in records {
        let key = key_of(&r.transactional_id);
        let value = match &r.value {
            Some(v) => Some(serde_json::to_vec(v).ok()?),
            None => None,
        };
        b.push(now_ms, Some(&key), value.as_deref(), &[]);
    }
    b.build().ok().map(Bytes::from)
}

/// Decode one stored record; `None` for anything that is not ours.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<TxnRecord> {
    let k: serde_json::Value = serde_json::from_slice(key).ok()?;
    let parts = k.as_array()?;
    if parts.first()?.as_str()? != "txn" {
        return None;
    }
    Some(TxnRecord {
        transactional_id: parts.get(1)?.as_str()?.to_string(),
        value: match value {
            Some(v) => Some(serde_json::from_slice(v).ok()?),
            None => None,
        },
    })
}

/// Every record of a run of batches read from the log, in order.
pub fn decode_batches(bytes: &[u8]) -> Vec<TxnRecord> {
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
    use crate::txn::metadata::TxnState;

    #[test]
    fn records_round_trip_through_a_batch() {
        let t = TxnTransit {
            producer_id: 7,
            last_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a".to_string(), 0), ("b".to_string(), 2)]
                .into_iter()
                .collect(),
            start_ms: 10,
            update_ms: 20,
        };
        let recs = vec![
            TxnRecord {
                transactional_id: "tx-1".into(),
                value: Some(t),
            },
            TxnRecord {
                transactional_id: "tx-2".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&recs, 5).unwrap();
        assert_eq!(decode_batches(&batch), recs);
        assert_eq!(decode(b"[\"offset\",\"g\"]", None), None);
    }
}

//! InitProducerId for idempotent producers (KIP-98): a null transactional id
//! gets a fresh producer id, from the block this broker reserved through the
//! controller, with epoch 0. A producer that sends its current id and epoch
//! (KIP-360, v3+) gets the same id with the epoch bumped, so partitions
//! accept its sequences from 0 again; when the epoch is exhausted, or the id
//! was never handed out by this cluster, it gets a fresh id with epoch 0.
//! Giving only one of id and epoch is INVALID_REQUEST (as Kafka).
//!
//! With a transactional id the transaction coordinator answers (see
//! [`crate::txn`]): the id's producer id with its epoch bumped, fencing
//! the previous producer of the id and aborting its open transaction
//! (CONCURRENT_TRANSACTIONS until the abort completed; the client
//! retries). An empty transactional id is INVALID_REQUEST, as Kafka.
//! PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below v4 (KIP-588).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError as E;

use crate::context::BrokerContext;
use crate::errors;
use crate::txn::metadata::downgrade_fenced;

/// The first version that knows PRODUCER_FENCED.
const FENCED_FROM: i16 = 4;

/// Kafka's "no producer id" / "no epoch" (`RecordBatch.NO_PRODUCER_ID`).
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

/// What to hand a producer that asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A new producer id with epoch 0.
    Fresh,
    /// The producer's own id with this (bumped) epoch.
    Bumped { producer_id: i64, epoch: i16 },
    /// The id/epoch pair is malformed.
    Invalid,
}

/// Decide on a request carrying `producer_id` and `epoch` (both -1 when the
/// producer has none), given that ids below `issued_below` have been handed
/// out by this cluster.
pub fn identity(producer_id: i64, epoch: i16, issued_below: i64) -> Identity {
    match (producer_id, epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => Identity::Fresh,
        (id, e) if id < 0 || e < 0 => Identity::Invalid,
        (id, _) if id >= issued_below => Identity::Fresh,
        (id, e) => match e.checked_add(1) {
            Some(epoch) => Identity::Bumped {
                producer_id: id,
                epoch,
            },
            None => Identity::Fresh,
        },
    }
}

pub async fn handle(
    b: &BrokerContext,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let error = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH)
    };
    if let Some(id) = req.transactional_id.as_deref() {
        if id.is_empty() {
            return error(E::InvalidRequest.code());
        }
        let expected = match (req.producer_id.0, req.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (pid, epoch) if pid >= 0 && epoch >= 0 => Some((pid, epoch)),
            _ => return error(E::InvalidRequest.code()),
        };
        return match b
            .txns
            .init_producer_id(id, req.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(code) => error(downgrade_fenced(code, version, FENCED_FROM)),
        };
    }
    let issued_below = b.image().next_producer_id;
    match identity(req.producer_id.0, req.producer_epoch, issued_below) {
        Identity::Invalid => error(E::InvalidRequest.code()),
        Identity::Bumped { producer_id, epoch } => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Identity::Fresh => match b.next_producer_id().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(resp) => error(errors::producer_id_allocation(&resp)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_producer_gets_its_epoch_bumped_and_others_a_fresh_id() {
        assert_eq!(identity(-1, -1, 1000), Identity::Fresh);
        assert_eq!(
            identity(7, 3, 1000),
            Identity::Bumped {
                producer_id: 7,
                epoch: 4
            }
        );
        assert_eq!(
            identity(7, i16::MAX - 1, 1000),
            Identity::Bumped {
                producer_id: 7,
                epoch: i16::MAX
            }
        );
        assert_eq!(
            identity(7, i16::MAX, 1000),
            Identity::Fresh,
            "epoch exhausted"
        );
        assert_eq!(identity(1000, 0, 1000), Identity::Fresh, "never issued");
    }

    #[test]
    fn half_an_identity_is_invalid() {
        assert_eq!(identity(-1, 0, 1000), Identity::Invalid);
        assert_eq!(identity(5, -1, 1000), Identity::Invalid);
        assert_eq!(identity(-7, 2, 1000), Identity::Invalid);
        assert_eq!(identity(5, -3, 1000), Identity::Invalid);
    }
}

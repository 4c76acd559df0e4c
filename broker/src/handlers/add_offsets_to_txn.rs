//! AddOffsetsToTxn: a transactional producer is about to send a group's
//! offsets with its transaction (`send_offsets_to_transaction`); the
//! group's `__consumer_offsets` partition joins the transaction, so the
//! COMMIT/ABORT marker also settles those offsets. PRODUCER_FENCED is
//! INVALID_PRODUCER_EPOCH below v2 (KIP-588).

use kafka_protocol::messages::*;

use crate::context::BrokerContext;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::txn::metadata::downgrade_fenced;

const FENCED_FROM: i16 = 2;

pub async fn handle(
    b: &BrokerContext,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition = (
        OFFSETS_TOPIC.to_string(),
        b.groups.partition_of(&req.group_id.0),
    );
    let code = match b
        .txns
        .add_partitions(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            &[partition],
        )
        .await
    {
        Ok(()) => 0,
        Err(code) => downgrade_fenced(code, version, FENCED_FROM),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

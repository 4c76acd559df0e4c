//! EndTxn: commit or abort the producer's transaction. Answered once the
//! decision (PrepareCommit/PrepareAbort) is durable in
//! `__transaction_state`; the coordinator then writes the markers and
//! completes the transaction. A retry of a completed commit (or abort) is
//! answered NONE, as Kafka. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below
//! v2 (KIP-588).

use kafka_protocol::messages::*;

use crate::context::BrokerContext;
use crate::txn::metadata::{downgrade_fenced, TxnResult};

const FENCED_FROM: i16 = 2;

pub async fn handle(b: &BrokerContext, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = if req.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let code = match b
        .txns
        .end_txn(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            result,
        )
        .await
    {
        Ok(()) => 0,
        Err(code) => downgrade_fenced(code, version, FENCED_FROM),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

//! ListTransactions (KIP-664): the transactional ids this node
//! coordinates, filtered by state names, producer ids and (v1, KIP-994)
//! by running for longer than `duration_filter` ms. Unknown state names
//! are echoed in `unknown_state_filters`, as Kafka.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::*;

use super::sb;
use crate::context::BrokerContext;
use crate::txn::coordinator::now_ms;
use crate::txn::metadata::TxnState;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn handle(
    b: &BrokerContext,
    req: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    let known = |s: &str| STATES.iter().any(|k| k.name() == s);
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|s| !known(s.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    let states = b
        .txns
        .list()
        .await
        .into_iter()
        .filter(|d| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == d.state.name())
        })
        .filter(|d| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == d.producer_id)
        })
        .filter(|d| {
            req.duration_filter < 0
                || (d.start_ms >= 0 && now.saturating_sub(d.start_ms) >= req.duration_filter)
        })
        .map(|d| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(sb(d.transactional_id)))
                .with_producer_id(ProducerId(d.producer_id))
                .with_transaction_state(sb(d.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

//! DescribeTransactions (KIP-664): the state of transactional ids this
//! node coordinates; NOT_COORDINATOR for the others,
//! TRANSACTIONAL_ID_NOT_FOUND for unknown ones.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::*;

use super::{sb, tn};
use crate::context::BrokerContext;

pub async fn handle(
    b: &BrokerContext,
    req: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let mut states = Vec::new();
    for id in &req.transactional_ids {
        let s = match b.txns.describe(&id.0).await {
            Ok(d) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in d.partitions {
                    topics.entry(t).or_default().push(p);
                }
                TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_transaction_state(sb(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default().with_topic(tn(t)).with_partitions(ps)
                            })
                            .collect(),
                    )
            }
            Err(code) => TransactionState::default()
                .with_transactional_id(id.clone())
                .with_error_code(code)
                .with_transaction_state(sb(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        states.push(s);
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

//! Fetch: whole batches from each partition's log up to the high watermark,
//! within `partition_max_bytes` and the response's `max_bytes` (the first
//! partition with data always gets at least one whole batch), waiting up to
//! `max_wait_ms` for `min_bytes` to arrive (long poll).
//!
//! A fetch with a replica id (≥ 0) from a replica of the partition is a
//! follower fetch: it reads up to the log end, records the follower's fetch
//! offset (which may advance the high watermark), and, when the follower's
//! `last_fetched_epoch` disagrees with this leader's epoch cache, answers
//! only `diverging_epoch` for the follower to truncate to (KIP-595).
//!
//! Fetch sessions (KIP-227) are not implemented: every response carries
//! session id 0, which tells clients to keep sending full requests, and an
//! incremental request for a session id gets FETCH_SESSION_ID_NOT_FOUND.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError as E;
use parking_lot::Mutex;
use rivulet_protocol::spliced::{self, FilePiece};
use rivulet_storage::TopicPartition;

use super::{leader_hint, topic_ids};
use crate::context::BrokerContext;
use crate::errors;
use crate::replica_manager::Partition;
use crate::replication::FollowerFetchAnswer;

/// Record bytes a fetch response sends straight from the log's files: for
/// each, a stand-in of its length in the response
/// ([`spliced::file_stand_in`]) and the file range the connection sends in
/// its place (`sendfile(2)` on a plain socket). Only follower fetches use
/// it (a consumer's records are counted by reading them, for the metrics);
/// off for connections that cannot send files.
#[derive(Debug, Default)]
pub struct FetchFiles {
    on: bool,
    /// The pieces so far, and the stand-in bytes they take.
    pieces: Mutex<(Vec<(Bytes, FilePiece)>, usize)>,
}

impl FetchFiles {
    pub fn new(on: bool) -> Self {
        FetchFiles {
            on,
            pieces: Mutex::default(),
        }
    }

    /// Nothing is sent from files: every record byte is read into memory.
    pub fn off() -> Self {
        FetchFiles::default()
    }

    /// The pieces and their stand-ins, to encode the response with.
    pub fn take(&self) -> Vec<(Bytes, FilePiece)> {
        std::mem::take(&mut *self.pieces.lock()).0
    }

    /// A stand-in for `piece`, kept with it; `None` (the caller reads the
    /// bytes) when off, or the piece is too short or does not fit.
    fn stand_in(&self, piece: FilePiece) -> Option<Bytes> {
        if !self.on {
            return None;
        }
        let mut guard = self.pieces.lock();
        let (pieces, used) = &mut *guard;
        let stand_in = spliced::file_stand_in(*used, piece.len)?;
        *used += stand_in.len();
        pieces.push((stand_in.clone(), piece));
        Some(stand_in)
    }
}

/// Upper bound on `max_wait_ms`, so a client cannot park a request forever.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// `listener`: the listener the client connected to (KIP-951 endpoints are
/// its addresses there); `files`: where a follower's records to be sent
/// from files go.
pub async fn handle(
    b: &BrokerContext,
    req: FetchRequest,
    version: i16,
    listener: &str,
    files: &FetchFiles,
) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(E::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        let partitions: Vec<Option<Arc<Partition>>> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    b.replicas
                        .get(&TopicPartition::new(t.topic.to_string(), p.partition))
                })
            })
            .collect();
        // Arm the wake-ups before reading, so an append in between is seen.
        let wakeups: Vec<_> = partitions
            .iter()
            .flatten()
            .map(|p| p.appended.notified())
            .collect();
        let (mut response, bytes, any_error) = read_all(b, &req, version, files);
        if bytes >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
            count_out(b, &req, version, &response);
            leader_hint::fill_fetch(&mut response, &b.image(), listener, version);
            return response;
        }
        if wakeups.is_empty() {
            crate::metrics::remote(tokio::time::sleep_until(deadline)).await;
            continue;
        }
        let any_append = futures_util::future::select_all(wakeups.into_iter().map(Box::pin));
        // A long poll waits for data: remote time (crate::metrics).
        crate::metrics::remote(async {
            tokio::select! {
                _ = any_append => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        })
        .await;
    }
}

/// The replica id of a fetch (v15+ in `replica_state`); negative for a
/// consumer's.
pub fn replica_id(req: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

/// Count the record bytes of `response` as bytes out of each topic
/// ([`crate::metrics`]), a follower's apart.
fn count_out(b: &BrokerContext, req: &FetchRequest, version: i16, response: &FetchResponse) {
    let replica_id = replica_id(req, version);
    let mut image = None;
    for t in &response.responses {
        let mut name = t.topic.to_string();
        if name.is_empty() {
            let image = image.get_or_insert_with(|| b.image());
            match image.topics.get(&t.topic_id) {
                Some(topic) => name = topic.name.clone(),
                None => continue,
            }
        }
        for p in &t.partitions {
            if let Some(records) = &p.records {
                b.metrics.fetched(&name, records, replica_id >= 0);
            }
        }
    }
}

/// One pass over every requested partition: the response, the record bytes
/// it carries and whether any partition failed.
fn read_all(
    b: &BrokerContext,
    req: &FetchRequest,
    version: i16,
    files: &FetchFiles,
) -> (FetchResponse, usize, bool) {
    // A response read again after a long poll starts over.
    files.take();
    let replica_id = replica_id(req, version);
    let by_id = topic_ids::by_id(true, version);
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.topic.to_string();
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition::new(name.clone(), p.partition);
            let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
            let min_one = total == 0;
            let data = match topic_ids::partition_error(b, &tp, &t.topic_id, by_id) {
                Some(code) => partition_error(code),
                None => read_partition(
                    b,
                    &tp,
                    version,
                    Position {
                        replica_id,
                        fetch_offset: p.fetch_offset,
                        durable_offset: crate::replica_fetcher::durable_offset(p),
                        current_leader_epoch: p.current_leader_epoch,
                        last_fetched_epoch: p.last_fetched_epoch,
                    },
                    Budget {
                        max_bytes: limit,
                        min_one,
                    },
                    req.isolation_level,
                    files,
                ),
            };
            if data.error_code != 0 {
                any_error = true;
            }
            let n = data.records.as_ref().map_or(0, Bytes::len);
            total += n;
            remaining = remaining.saturating_sub(n);
            parts.push(data.with_partition_index(p.partition));
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        any_error,
    )
}

fn partition_error(code: i16) -> PartitionData {
    PartitionData::default()
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica((-1).into())
        .with_records(Some(Bytes::new()))
}

/// Who fetches one partition, and from where.
struct Position {
    /// The follower's node id, or -1 for a consumer.
    replica_id: i32,
    fetch_offset: i64,
    /// A Rivulet follower's on-disk offset ([`crate::replica_fetcher::durable_offset`]).
    durable_offset: Option<i64>,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

/// How much one partition may return.
struct Budget {
    max_bytes: usize,
    /// At least one whole batch (the first partition with data).
    min_one: bool,
}

fn read_partition(
    b: &BrokerContext,
    tp: &TopicPartition,
    version: i16,
    pos: Position,
    Budget { max_bytes, min_one }: Budget,
    isolation_level: i8,
    files: &FetchFiles,
) -> PartitionData {
    let Some(partition) = b.replicas.get(tp) else {
        return partition_error(E::UnknownTopicOrPartition.code());
    };
    let state = partition.state();
    if state.leader != b.node_id() {
        let mut data = partition_error(E::NotLeaderOrFollower.code());
        // KIP-951: name the current leader (v12+; its NodeEndpoints, v16+,
        // are filled for the whole response by leader_hint::fill_fetch).
        if version >= leader_hint::FETCH_FROM {
            if let Some((leader, epoch)) =
                leader_hint::current_leader(&b.image(), &tp.topic, tp.partition)
            {
                data.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
        }
        return data;
    }
    let Position {
        replica_id,
        fetch_offset,
        durable_offset,
        current_leader_epoch,
        last_fetched_epoch,
    } = pos;
    if current_leader_epoch >= 0 && current_leader_epoch != state.leader_epoch {
        return partition_error(if current_leader_epoch < state.leader_epoch {
            E::FencedLeaderEpoch.code()
        } else {
            E::UnknownLeaderEpoch.code()
        });
    }
    let follower =
        replica_id >= 0 && replica_id != b.node_id() && state.replicas.contains(&replica_id);
    if follower {
        let answer = b.replicas.follower_fetch(
            &partition,
            replica_id,
            fetch_offset,
            durable_offset,
            last_fetched_epoch,
        );
        if let FollowerFetchAnswer::Diverging { epoch, end_offset } = answer {
            let (hw, log_start) = {
                let log = partition.log.lock();
                (log.high_watermark(), log.log_start_offset())
            };
            return PartitionData::default()
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start)
                .with_preferred_read_replica((-1).into())
                .with_diverging_epoch(
                    EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset),
                )
                .with_records(Some(Bytes::new()));
        }
    }
    // A throttled replica (one a reassignment is adding, or one the topic's
    // leader.replication.throttled.replicas names here, out of the ISR)
    // copies under the leader's replication quota: nothing more once it is
    // spent.
    let quota = &b.replicas.quotas.leader;
    let throttled = follower
        && quota.is_limited()
        && crate::replication_quota::is_throttled(
            &b.image(),
            &tp.topic,
            tp.partition,
            rivulet_controller::throttled_replicas::LEADER_KEY,
            b.node_id(),
            replica_id,
        );
    let allowed = if throttled {
        quota.available()
    } else {
        usize::MAX
    };
    let quota_spent = allowed == 0;
    let max_bytes = max_bytes.min(allowed);
    // Plan under the log's lock; read the bytes after releasing it. A
    // follower reads up to the log end, a read_uncommitted consumer up to
    // the high watermark, a read_committed one up to the last stable
    // offset, with the aborted transactions of what it may read (their
    // records and control batches are returned: the client drops them).
    let read_committed = !follower && isolation_level == 1;
    let (plan, hw, lso, log_start, aborted) = {
        let log = partition.log.lock();
        let hw = log.high_watermark();
        let lso = log.last_stable_offset();
        let upper = if quota_spent {
            Some(fetch_offset)
        } else if follower {
            None
        } else if read_committed {
            Some(lso)
        } else {
            Some(hw)
        };
        let aborted = if read_committed {
            log.aborted_transactions(fetch_offset, lso)
        } else {
            Ok(Vec::new())
        };
        (
            log.plan_read(fetch_offset, max_bytes, upper, min_one),
            hw,
            lso,
            log.log_start_offset(),
            aborted,
        )
    };
    let aborted = match aborted {
        Ok(list) => list,
        Err(e) => return partition_error(errors::storage(&e)),
    };
    let base = PartitionData::default()
        .with_high_watermark(hw)
        .with_last_stable_offset(lso)
        .with_log_start_offset(log_start)
        .with_preferred_read_replica((-1).into())
        .with_aborted_transactions(read_committed.then(|| {
            aborted
                .iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(a.producer_id))
                        .with_first_offset(a.first_offset)
                })
                .collect()
        }));
    let records = match plan {
        Ok(Some(plan)) => match follower.then(|| files.stand_in(plan.file_piece())) {
            Some(Some(stand_in)) => Ok(stand_in),
            _ => plan.execute(),
        },
        Ok(None) => Ok(Bytes::new()),
        Err(e) => Err(e),
    };
    match records {
        Ok(bytes) => {
            if throttled {
                quota.record(bytes.len());
            }
            base.with_records(Some(bytes))
        }
        Err(e) => base
            .with_error_code(errors::storage(&e))
            .with_records(Some(Bytes::new())),
    }
}

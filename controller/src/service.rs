//! The controller service: requests from brokers and admin handlers
//! (register, heartbeat, create topics, alter ISR, ...), answered by the
//! active controller and redirected by the others.
//!
//! Decisions are serialized: one request at a time computes its records from
//! an image that reflects every committed entry (a linearizable-read barrier
//! first), then commits them, as Kafka's single-threaded QuorumController
//! does. Broker liveness (session timeouts) is tracked here, on the active
//! controller only; a newly elected controller gives every broker a fresh
//! session.

use std::collections::BTreeMap;

use openraft::raft::ReadPolicy;
use parking_lot::Mutex;
use rivulet_storage::LogConfig;
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;

use crate::liveness::{self, PeerLiveness};
use crate::logic::{self, BrokerHeartbeats, ControllerError};
use crate::raft::network::{ControllerHandler, RaftSlot};
use crate::raft::state_machine::StateMachine;
use crate::raft::Command;
use crate::records::{Listener, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker {
        node_id: i32,
        incarnation: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
        /// What this broker can host (see [`crate::capacity`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_partitions: Option<u64>,
    },
    BrokerHeartbeat {
        node_id: i32,
        incarnation: Uuid,
    },
    /// Clean shutdown: fence the broker now so its partitions move at once.
    BrokerShutdown {
        node_id: i32,
        incarnation: Uuid,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: i32,
        validate_only: bool,
        /// Replicas of each new partition (`None`: placed by the controller).
        #[serde(default)]
        assignments: Option<Vec<Vec<i32>>>,
    },
    /// ElectLeaders for these partitions (`None`: all of them).
    ElectLeaders {
        election: crate::election::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments: (topic, partition, target replicas or
    /// `None` to cancel), decided together.
    AlterReassignments {
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    },
    /// CreateTopics with a manual replica assignment: (partition, replicas).
    CreateTopicAssigned {
        name: String,
        assignments: Vec<(i32, Vec<i32>)>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    AlterTopicConfigs {
        name: String,
        changes: BTreeMap<String, Option<String>>,
        validate_only: bool,
    },
    /// Dynamic broker configs of one broker, or of every broker
    /// ([`crate::logic::CLUSTER_DEFAULT`]).
    AlterBrokerConfigs {
        broker: i32,
        changes: BTreeMap<String, Option<String>>,
        validate_only: bool,
    },
    AlterPartition {
        topic: String,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    AllocateProducerIds {
        broker_id: i32,
    },
    /// Create these (validated) ACLs; those already present stay as they are.
    CreateAcls {
        acls: Vec<crate::acl::AclBinding>,
    },
    /// Delete every ACL any filter matches, atomically.
    DeleteAcls {
        filters: Vec<crate::acl::AclFilter>,
    },
    /// AlterUserScramCredentials; `only_if_absent` (the bootstrap users)
    /// leaves an existing credential as it is.
    AlterUserScramCredentials {
        deletions: Vec<crate::scram::ScramDeletion>,
        upsertions: Vec<crate::scram::ScramUpsertion>,
        only_if_absent: bool,
    },
    /// AlterClientQuotas: each alteration applied whole or refused.
    AlterClientQuotas {
        alterations: Vec<crate::client_quotas::QuotaAlteration>,
    },
    /// DescribeQuorum: the quorum as the active controller sees it.
    DescribeQuorum,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// Done; the change is in the image from `offset` on.
    Ok {
        offset: u64,
    },
    ProducerIds {
        first: i64,
        count: i64,
    },
    Error(ControllerError),
    /// This node is not the active controller; try the leader if known.
    NotController {
        leader: Option<(u64, String)>,
    },
    /// The broker's incarnation is unknown or superseded: re-register.
    StaleBrokerEpoch,
    /// DeleteAcls done (in the image from `offset` on): the ACLs each filter
    /// matched, in filter order.
    AclsDeleted {
        offset: u64,
        matched: Vec<Vec<crate::acl::AclBinding>>,
    },
    /// AlterUserScramCredentials: one result per user; the changes are in
    /// the image from `offset` on.
    ScramResults {
        offset: u64,
        results: Vec<crate::scram::ScramResult>,
    },
    /// AlterClientQuotas: per alteration in request order, `None` when
    /// applied, else why not; the changes are in the image from `offset`
    /// on.
    ClientQuotaResults {
        offset: u64,
        results: Vec<Option<String>>,
    },
    /// DescribeQuorum's answer.
    Quorum(crate::describe_quorum::QuorumDescription),
    /// ElectLeaders: one result per partition asked about (or, for all
    /// partitions, per partition that needed an election); the new leaders
    /// are in the image from `offset` on.
    Elections {
        offset: u64,
        results: Vec<crate::election::ElectionResult>,
    },
    /// AlterReassignments: per partition in request order, `None` when
    /// accepted; the changes are in the image from `offset` on.
    Reassignments {
        offset: u64,
        results: Vec<Option<crate::reassign::ReassignError>>,
    },
}

/// The service one controller node runs; only the Raft leader answers.
#[derive(Debug)]
pub struct ControllerService {
    raft: RaftSlot,
    sm: StateMachine,
    log_defaults: LogConfig,
    decide: tokio::sync::Mutex<()>,
    heartbeats: Mutex<BrokerHeartbeats>,
    /// The term in which `heartbeats` were last taken as the active
    /// controller: in a later term (this node lost and regained leadership,
    /// or its Raft instance restarted) they are stale.
    heartbeats_term: Mutex<Option<u64>>,
    /// Voters whose controller port refused the Raft connection, when fast
    /// fencing is on (`broker.fence.on.refused.connection`).
    refusals: std::sync::OnceLock<PeerLiveness>,
    clock: fn() -> i64,
    /// `auto.leader.rebalance.enable` and
    /// `leader.imbalance.per.broker.percentage`.
    leader_balance: (bool, u32),
    /// Most partition replicas a broker may host (see [`crate::capacity`]).
    partition_limit: Option<usize>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ControllerService {
    pub(crate) fn new(
        raft: RaftSlot,
        sm: StateMachine,
        log_defaults: LogConfig,
        session_timeout_ms: i64,
    ) -> Self {
        ControllerService {
            raft,
            sm,
            log_defaults,
            decide: tokio::sync::Mutex::new(()),
            heartbeats: Mutex::new(BrokerHeartbeats::new(session_timeout_ms)),
            heartbeats_term: Mutex::new(None),
            refusals: std::sync::OnceLock::new(),
            clock: now_ms,
            leader_balance: (true, 10),
            partition_limit: None,
        }
    }

    /// `records` if their new partitions fit every broker's capacity (see
    /// [`crate::capacity`]); none to write when only validating.
    fn within_capacity(
        &self,
        image: &crate::image::MetadataImage,
        records: Vec<MetadataRecord>,
        validate_only: bool,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        crate::capacity::check_partition_capacity(image, &records, self.partition_limit)?;
        Ok(if validate_only { Vec::new() } else { records })
    }

    /// Refuse new partitions that would put a broker over `limit` replicas.
    pub(crate) fn with_partition_limit(mut self, limit: Option<usize>) -> Self {
        self.partition_limit = limit;
        self
    }

    /// Set `auto.leader.rebalance.enable` and
    /// `leader.imbalance.per.broker.percentage`.
    pub(crate) fn with_leader_balance(mut self, enabled: bool, percentage: u32) -> Self {
        self.leader_balance = (enabled, percentage);
        self
    }

    /// Fence brokers whose voter's port refuses connections at once (see
    /// [`crate::liveness`]), besides those whose session expires.
    pub(crate) fn watch_refusals(&self, liveness: PeerLiveness) {
        let _ = self.refusals.set(liveness);
    }

    /// Voter `id`'s controller address, from the Raft membership.
    fn voter_addr(&self, id: u64) -> Option<String> {
        use openraft::async_runtime::WatchReceiver;
        let m = self.raft.get().metrics();
        let m = m.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    fn not_controller(&self) -> ControllerResponse {
        let current = {
            use openraft::async_runtime::WatchReceiver;
            self.raft.get().metrics().borrow_watched().current_leader
        };
        let leader = current.and_then(|id| self.voter_addr(id).map(|addr| (id, addr)));
        ControllerResponse::NotController { leader }
    }

    /// Commit `records` (nothing to do when empty).
    async fn commit(&self, records: Vec<MetadataRecord>) -> ControllerResponse {
        if records.is_empty() {
            return ControllerResponse::Ok {
                offset: self.sm.image().offset,
            };
        }
        match self.raft.get().client_write(Command { records }).await {
            Ok(resp) => ControllerResponse::Ok {
                offset: resp.data.offset,
            },
            Err(_) => self.not_controller(),
        }
    }

    /// Take the decision lock as the active controller, once the image
    /// reflects every committed entry (a linearizable-read barrier): every
    /// decision is made this way, one at a time. `None` when this node is
    /// not (or no longer) the leader.
    async fn decide_as_active(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let raft = self.raft.get();
        if !raft.is_leader() {
            return None;
        }
        let guard = self.decide.lock().await;
        raft.ensure_linearizable(ReadPolicy::ReadIndex).await.ok()?;
        let term = {
            use openraft::async_runtime::WatchReceiver;
            raft.metrics().borrow_watched().current_term
        };
        if self.heartbeats_term.lock().replace(term) != Some(term) {
            // Newly active: every broker gets a full session from now.
            self.heartbeats.lock().reset();
            if let Some(refusals) = self.refusals.get() {
                refusals.clear();
            }
        }
        Some(guard)
    }

    /// Fence brokers whose session expired; called periodically.
    pub(crate) async fn expire_sessions(&self) {
        let Some(_g) = self.decide_as_active().await else {
            return;
        };
        let image = self.sm.image();
        let expired = self.heartbeats.lock().expired(&image, (self.clock)());
        for node_id in expired {
            let image = self.sm.image();
            if let Ok(records) = logic::fence_broker(&image, node_id) {
                info!(node_id, "broker session expired: fencing it");
                let _ = self.commit(records).await;
            }
        }
        self.fence_refused().await;
    }

    /// Fence the live brokers whose voter's port refused a connection and
    /// refuses one again now: their process is gone.
    async fn fence_refused(&self) {
        let Some(refusals) = self.refusals.get() else {
            return;
        };
        for (node, since) in refusals.refused_nodes() {
            let Ok(node_id) = i32::try_from(node) else {
                continue;
            };
            if !self.sm.image().is_live(node_id) {
                continue;
            }
            let Some(addr) = self.voter_addr(node) else {
                continue;
            };
            if !liveness::confirm_refused(&addr).await {
                // Up again (a restart) or merely slow: not proof of death.
                refusals.connected(node);
                continue;
            }
            let image = self.sm.image();
            if let Ok(records) = logic::fence_broker(&image, node_id) {
                info!(
                    node_id,
                    %addr,
                    refused_for_ms = since.elapsed().as_millis() as u64,
                    "broker's controller port refuses connections (its process is gone): fencing it"
                );
                self.heartbeats.lock().forget(node_id);
                let _ = self.commit(records).await;
            }
        }
    }

    /// Move leadership back to preferred replicas; called periodically.
    pub(crate) async fn rebalance_leaders(&self) {
        let (enabled, percentage) = self.leader_balance;
        if !enabled {
            return;
        }
        let Some(_g) = self.decide_as_active().await else {
            return;
        };
        let records = crate::election::rebalance_leaders(&self.sm.image(), percentage);
        if !records.is_empty() {
            info!(
                partitions = records.len(),
                "leader imbalance: moving leaders back to preferred replicas"
            );
        }
        if !records.is_empty() {
            let _ = self.commit(records).await;
        }
    }

    /// Answer one request as the active controller.
    pub async fn process(&self, req: ControllerRequest) -> ControllerResponse {
        let Some(_g) = self.decide_as_active().await else {
            return self.not_controller();
        };
        let image = self.sm.image();
        let defaults = &self.log_defaults;
        let decided: Result<Vec<MetadataRecord>, ControllerError> = match req {
            ControllerRequest::RegisterBroker {
                node_id,
                incarnation,
                listeners,
                rack,
                max_partitions,
            } => {
                self.heartbeats.lock().touch(node_id, (self.clock)());
                let mut records = Vec::new();
                if image.brokers.contains_key(&node_id) {
                    // A restarted broker: fence the old incarnation first so
                    // its partitions move before the new one takes over.
                    records.extend(logic::fence_broker(&image, node_id).unwrap_or_default());
                }
                records.extend(logic::register_broker_with_capacity(
                    node_id,
                    incarnation,
                    listeners,
                    rack,
                    max_partitions,
                ));
                Ok(records)
            }
            ControllerRequest::BrokerHeartbeat {
                node_id,
                incarnation,
            } => match image.brokers.get(&node_id) {
                Some(b) if b.incarnation == incarnation => {
                    self.heartbeats.lock().touch(node_id, (self.clock)());
                    logic::unfence_broker(&image, node_id)
                }
                _ => return ControllerResponse::StaleBrokerEpoch,
            },
            ControllerRequest::BrokerShutdown {
                node_id,
                incarnation,
            } => match image.brokers.get(&node_id) {
                Some(b) if b.incarnation == incarnation => {
                    self.heartbeats.lock().forget(node_id);
                    logic::shut_down_broker(&image, node_id)
                }
                _ => return ControllerResponse::StaleBrokerEpoch,
            },
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
                validate_only,
            } => logic::create_topic(
                &image,
                defaults,
                &name,
                partitions,
                replication_factor,
                &configs,
                Uuid::new_v4(),
            )
            .and_then(|r| self.within_capacity(&image, r, validate_only)),
            ControllerRequest::DeleteTopic { name } => logic::delete_topic(&image, &name),
            ControllerRequest::CreatePartitions {
                name,
                total,
                validate_only,
                assignments,
            } => match &assignments {
                None => logic::create_partitions(&image, &name, total),
                Some(a) => crate::assignment::create_partitions_assigned(&image, &name, total, a),
            }
            .and_then(|r| self.within_capacity(&image, r, validate_only)),
            ControllerRequest::ElectLeaders {
                election,
                partitions,
            } => {
                let (records, results) =
                    crate::election::elect_leaders(&image, election, partitions.as_deref());
                return match self.commit(records).await {
                    ControllerResponse::Ok { offset } => {
                        ControllerResponse::Elections { offset, results }
                    }
                    other => other,
                };
            }
            ControllerRequest::CreateTopicAssigned {
                name,
                assignments,
                configs,
                validate_only,
            } => crate::assignment::create_topic_assigned(
                &image,
                defaults,
                &name,
                &assignments,
                &configs,
                Uuid::new_v4(),
            )
            .and_then(|r| self.within_capacity(&image, r, validate_only)),
            ControllerRequest::AlterTopicConfigs {
                name,
                changes,
                validate_only,
            } => logic::alter_topic_configs(&image, defaults, &name, &changes).map(|r| {
                if validate_only {
                    Vec::new()
                } else {
                    r
                }
            }),
            ControllerRequest::AlterBrokerConfigs {
                broker,
                changes,
                validate_only,
            } => logic::alter_broker_configs(&image, broker, &changes).map(|r| {
                if validate_only {
                    Vec::new()
                } else {
                    r
                }
            }),
            ControllerRequest::AlterPartition {
                topic,
                partition,
                leader_id,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => logic::alter_partition(
                &image,
                &topic,
                partition,
                leader_id,
                leader_epoch,
                partition_epoch,
                new_isr.clone(),
            )
            .map(|mut records| {
                // A reassignment whose new replicas are now all in sync
                // completes with this ISR change.
                if let Some((id, p)) = image
                    .topic(&topic)
                    .and_then(|t| Some((t.id, t.partitions.get(&partition)?)))
                {
                    records.extend(crate::reassign::complete_if_caught_up(
                        &image, id, partition, p, &new_isr,
                    ));
                }
                records
            }),
            ControllerRequest::AlterReassignments { partitions } => {
                let mut records = Vec::new();
                let mut results = Vec::with_capacity(partitions.len());
                for (topic, partition, target) in &partitions {
                    match crate::reassign::alter_reassignment(
                        &image,
                        topic,
                        *partition,
                        target.as_deref(),
                    ) {
                        Ok(r) => {
                            records.extend(r);
                            results.push(None);
                        }
                        Err(e) => results.push(Some(e)),
                    }
                }
                return match self.commit(records).await {
                    ControllerResponse::Ok { offset } => {
                        ControllerResponse::Reassignments { offset, results }
                    }
                    other => other,
                };
            }
            ControllerRequest::AllocateProducerIds { broker_id } => {
                match logic::allocate_producer_ids(&image, broker_id) {
                    Ok((first, record)) => {
                        return match self.commit(vec![record]).await {
                            ControllerResponse::Ok { .. } => ControllerResponse::ProducerIds {
                                first,
                                count: logic::PRODUCER_ID_BLOCK,
                            },
                            other => other,
                        };
                    }
                    Err(e) => Err(e),
                }
            }
            ControllerRequest::CreateAcls { acls } => {
                crate::acl_control::create_acls(&image, &acls)
            }
            ControllerRequest::DeleteAcls { filters } => {
                match crate::acl_control::delete_acls(&image, &filters) {
                    Ok((matched, records)) => {
                        return match self.commit(records).await {
                            ControllerResponse::Ok { offset } => {
                                ControllerResponse::AclsDeleted { offset, matched }
                            }
                            other => other,
                        };
                    }
                    Err(e) => Err(e),
                }
            }
            ControllerRequest::DescribeQuorum => {
                use openraft::async_runtime::WatchReceiver;
                let metrics = self.raft.get().metrics().borrow_watched().clone();
                return match crate::describe_quorum::describe(&metrics) {
                    Some(d) => ControllerResponse::Quorum(d),
                    None => self.not_controller(),
                };
            }
            ControllerRequest::AlterClientQuotas { alterations } => {
                let (records, results) = crate::client_quotas::alter(&image, &alterations);
                return match self.commit(records).await {
                    ControllerResponse::Ok { offset } => {
                        ControllerResponse::ClientQuotaResults { offset, results }
                    }
                    other => other,
                };
            }
            ControllerRequest::AlterUserScramCredentials {
                deletions,
                upsertions,
                only_if_absent,
            } => {
                let (records, results) =
                    crate::scram::alter(&image, &deletions, &upsertions, only_if_absent);
                return match self.commit(records).await {
                    ControllerResponse::Ok { offset } => {
                        ControllerResponse::ScramResults { offset, results }
                    }
                    other => other,
                };
            }
        };
        match decided {
            Ok(records) => self.commit(records).await,
            Err(e) => ControllerResponse::Error(e),
        }
    }
}

impl ControllerHandler for ControllerService {
    async fn handle(&self, req: ControllerRequest) -> ControllerResponse {
        self.process(req).await
    }
}

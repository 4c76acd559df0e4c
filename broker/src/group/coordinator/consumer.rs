//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe over the pure [`ConsumerGroup`], persisting
//! the group's state to `__consumer_offsets` before answering.
//!
//! A group id names either a classic group or a consumer group. The first
//! consumer-protocol member of a Stable classic `consumer` group upgrades
//! it online: its classic members keep their partitions and are then
//! served from the consumer group ([`crate::group::consumer::classic`]);
//! a classic group that cannot be upgraded (rebalancing, another protocol
//! type) answers GROUP_ID_NOT_FOUND ("not a consumer group", as Kafka). A
//! classic JoinGroup whose metadata is not a consumer subscription is
//! INCONSISTENT_GROUP_PROTOCOL. An empty group of either kind (only
//! committed offsets left) becomes the other kind on its first member,
//! keeping its offsets. A consumer group whose last consumer-protocol
//! member leaves or expires while classic members remain is downgraded to
//! a classic group, which they rejoin (Kafka's bidirectional migration).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError as E;
use tracing::{info, warn};

use super::{now_ms, GroupCoordinator, GroupEntry, GroupInner};
use crate::group::consumer::{
    ClassicJoin, ConsumerGroup, ConsumerGroupState, GroupData, Heartbeat, HeartbeatResponse,
};
use crate::group::offsets::{OffsetsRecord, OFFSETS_TOPIC};
use crate::group::state::Group;
use crate::group::types::{JoinRequest, JoinResult};

/// Topics a consumer group never subscribes to (by name or regex).
const INTERNAL_TOPICS: &[&str] = &[OFFSETS_TOPIC, "__transaction_state"];

/// A refused heartbeat: the error code and Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatFailure {
    pub code: i16,
    pub message: Option<String>,
}

impl HeartbeatFailure {
    fn code(code: i16) -> HeartbeatFailure {
        HeartbeatFailure {
            code,
            message: None,
        }
    }
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub data: GroupData,
    pub state: ConsumerGroupState,
    pub assignor: String,
}

impl GroupCoordinator {
    /// Name → partition count of every topic a group may subscribe to.
    pub fn subscribable_topics(&self) -> BTreeMap<String, i32> {
        let image = self.node.image();
        image
            .topics
            .values()
            .filter(|t| !INTERNAL_TOPICS.contains(&t.name.as_str()))
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect()
    }

    /// Write the consumer group's state (acks=all).
    pub(super) async fn persist_consumer(
        &self,
        partition: i32,
        group: &ConsumerGroup,
    ) -> Result<(), i16> {
        let rec = OffsetsRecord::ConsumerGroup {
            group: group.group_id().to_string(),
            value: Some(Box::new(group.data().clone())),
        };
        self.append(partition, &[rec]).await.map(|_| ())
    }

    /// ConsumerGroupHeartbeat.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatResponse, HeartbeatFailure> {
        if group_id.is_empty() {
            return Err(HeartbeatFailure {
                code: E::InvalidRequest.code(),
                message: Some("GroupId can't be empty.".into()),
            });
        }
        let entry = match self.entry(group_id, hb.member_epoch == 0).await {
            Ok(Some(e)) => e,
            // No group and not joining: the member was removed with its
            // group; UNKNOWN_MEMBER_ID makes librdkafka rejoin.
            Ok(None) => return Err(HeartbeatFailure::code(E::UnknownMemberId.code())),
            Err(code) => return Err(HeartbeatFailure::code(code)),
        };
        let mut inner = entry.inner.lock().await;
        let now = now_ms();
        if !inner.group.is_empty() {
            // Online upgrade: a Stable classic `consumer` group becomes a
            // consumer group whose classic members keep their partitions.
            let converted = (hb.member_epoch == 0)
                .then(|| {
                    ConsumerGroup::from_classic(
                        &inner.group.snapshot(),
                        self.config.consumer.clone(),
                        &self.subscribable_topics(),
                        now,
                    )
                })
                .flatten();
            let Some(converted) = converted else {
                return Err(HeartbeatFailure {
                    code: E::GroupIdNotFound.code(),
                    message: Some(format!("Group {group_id} is not a consumer group.")),
                });
            };
            let shell = Group::new(group_id.to_string(), self.config.group.clone(), now);
            let records = [
                OffsetsRecord::Group {
                    group: group_id.to_string(),
                    value: Some(shell.snapshot()),
                },
                OffsetsRecord::ConsumerGroup {
                    group: group_id.to_string(),
                    value: Some(Box::new(converted.data().clone())),
                },
            ];
            if let Err(code) = self.append(entry.partition, &records).await {
                return Err(HeartbeatFailure::code(code));
            }
            info!(
                group = group_id,
                members = converted.data().members.len(),
                "classic group upgraded to a consumer group"
            );
            inner.group = shell;
            inner.consumer = Some(converted);
        }
        let mut next = match &inner.consumer {
            Some(g) => g.clone(),
            None if hb.member_epoch == 0 => {
                ConsumerGroup::new(group_id.to_string(), self.config.consumer.clone())
            }
            None => return Err(HeartbeatFailure::code(E::UnknownMemberId.code())),
        };
        let topics = self.subscribable_topics();
        let before = inner.consumer.as_ref().map(|g| g.data().clone());
        let leaving = hb.member_epoch == -1;
        let response = next
            .heartbeat(hb, &topics, now)
            .map_err(|e| HeartbeatFailure {
                code: e.code(),
                message: Some(e.to_string()),
            })?;
        if before.as_ref() != Some(next.data()) {
            if let Err(code) = self.persist_consumer(entry.partition, &next).await {
                warn!(group = group_id, code, "could not persist consumer group");
                return Err(HeartbeatFailure::code(code));
            }
            if before.as_ref().map(|b| b.group_epoch) != Some(next.data().group_epoch) {
                info!(
                    group = group_id,
                    epoch = next.data().group_epoch,
                    members = next.data().members.len(),
                    "consumer group epoch bumped"
                );
            }
        }
        inner.consumer = Some(next);
        if leaving {
            self.downgrade_if_only_classic(entry.partition, &mut inner, now)
                .await;
        }
        Ok(response)
    }

    /// Downgrade the consumer group of `inner` to a classic group once only
    /// classic members are left ([`ConsumerGroup::to_classic`]): the classic
    /// group's record is written with the consumer group's tombstone, then
    /// the members rejoin it. Left as it is if the write fails.
    pub(super) async fn downgrade_if_only_classic(
        &self,
        partition: i32,
        inner: &mut GroupInner,
        now: i64,
    ) {
        let Some(snapshot) = inner.consumer.as_ref().and_then(|g| g.to_classic(now)) else {
            return;
        };
        let group_id = snapshot.group_id.clone();
        let group = Group::from_snapshot(snapshot, self.config.group.clone(), now);
        let records = [
            OffsetsRecord::ConsumerGroup {
                group: group_id.clone(),
                value: None,
            },
            OffsetsRecord::Group {
                group: group_id.clone(),
                value: Some(group.snapshot()),
            },
        ];
        if let Err(code) = self.append(partition, &records).await {
            warn!(group = %group_id, code, "could not downgrade the consumer group");
            return;
        }
        info!(
            group = %group_id,
            members = group.members().len(),
            generation = group.generation_id(),
            "consumer group downgraded to a classic group: only classic members are left"
        );
        inner.consumer = None;
        inner.group = group;
    }

    /// ConsumerGroupDescribe: `Ok(None)` when the group does not exist or
    /// is not a consumer group.
    pub async fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<Option<ConsumerGroupView>, i16> {
        let Some(entry) = self.entry(group_id, false).await? else {
            return Ok(None);
        };
        let inner = entry.inner.lock().await;
        Ok(inner.consumer.as_ref().map(|g| ConsumerGroupView {
            data: g.data().clone(),
            state: g.state(),
            assignor: g.assignor(),
        }))
    }

    /// OffsetFetch v9's member check for a consumer group (0 for a classic
    /// group or an unknown one: the fetch itself answers those).
    pub async fn validate_consumer_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> i16 {
        match self.entry(group_id, false).await {
            Ok(Some(e)) => e
                .inner
                .lock()
                .await
                .consumer
                .as_ref()
                .map_or(0, |g| g.validate_offset_fetch(member_id, member_epoch)),
            Ok(None) => 0,
            Err(code) => code,
        }
    }

    /// A classic JoinGroup is about to use this group: refused while it is
    /// a consumer group with members; an empty consumer group is dropped
    /// (its record tombstoned) so the group becomes classic.
    pub(super) async fn take_for_classic(
        &self,
        partition: i32,
        inner: &mut GroupInner,
    ) -> Result<(), i16> {
        match &inner.consumer {
            None => Ok(()),
            Some(g) if !g.is_empty() => Err(E::InconsistentGroupProtocol.code()),
            Some(g) => {
                let rec = OffsetsRecord::ConsumerGroup {
                    group: g.group_id().to_string(),
                    value: None,
                };
                self.append(partition, &[rec]).await?;
                inner.consumer = None;
                Ok(())
            }
        }
    }

    /// Apply a change to the consumer group of `inner`: on a clone,
    /// persisted before it replaces the group (unchanged on any error).
    async fn change_consumer<T>(
        &self,
        partition: i32,
        inner: &mut GroupInner,
        f: impl FnOnce(&mut ConsumerGroup) -> Result<T, i16>,
    ) -> Result<T, i16> {
        let Some(current) = inner.consumer.as_ref() else {
            return Err(E::UnknownMemberId.code());
        };
        let mut next = current.clone();
        let out = f(&mut next)?;
        if current.data() != next.data() {
            self.persist_consumer(partition, &next).await?;
        }
        inner.consumer = Some(next);
        Ok(out)
    }

    /// A classic JoinGroup for a consumer group with members (see
    /// [`crate::group::consumer::classic`]).
    pub(super) async fn classic_join_consumer_group(
        &self,
        partition: i32,
        inner: &mut GroupInner,
        req: JoinRequest,
    ) -> JoinResult {
        let fail = |code: i16, member_id: String| JoinResult {
            error_code: code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        };
        // Kafka checks the protocols before asking for a member id.
        let usable = req.protocols.first().is_some_and(|(_, m)| {
            crate::group::consumer::classic::decode_subscription(m).is_some()
        });
        if req.protocol_type != "consumer" || !usable {
            return fail(E::InconsistentGroupProtocol.code(), req.member_id);
        }
        if req.member_id.is_empty() && req.require_known_member_id {
            // KIP-394: the member first gets an id.
            return fail(E::MemberIdRequired.code(), uuid::Uuid::new_v4().to_string());
        }
        let member_id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        let join = ClassicJoin {
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
        };
        let topics = self.subscribable_topics();
        let now = now_ms();
        let r = self
            .change_consumer(partition, inner, |g| {
                g.classic_join(join, &topics, now).map_err(|e| e.code())
            })
            .await;
        match r {
            Ok(j) => JoinResult {
                error_code: 0,
                generation_id: j.generation,
                protocol_type: Some("consumer".to_string()),
                protocol_name: Some(j.protocol),
                // No member leads: the coordinator assigns.
                leader: String::new(),
                member_id: j.member_id,
                members: Vec::new(),
                skip_assignment: false,
            },
            Err(code) => fail(code, member_id),
        }
    }

    /// A classic Heartbeat for a consumer group with members.
    pub(super) async fn classic_heartbeat_consumer_group(
        &self,
        partition: i32,
        inner: &mut GroupInner,
        member_id: &str,
        generation: i32,
    ) -> i16 {
        let topics = self.subscribable_topics();
        let now = now_ms();
        self.change_consumer(partition, inner, |g| {
            Ok(g.classic_heartbeat(member_id, generation, &topics, now))
        })
        .await
        .unwrap_or_else(|code| code)
    }

    /// A classic LeaveGroup for a consumer group with members.
    pub(super) async fn classic_leave_consumer_group(
        &self,
        partition: i32,
        inner: &mut GroupInner,
        members: &[(String, Option<String>)],
    ) -> Vec<i16> {
        let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
        self.change_consumer(partition, inner, |g| {
            Ok(ids
                .iter()
                .map(|id| g.classic_leave(id))
                .collect::<Vec<i16>>())
        })
        .await
        .unwrap_or_else(|code| vec![code; members.len()])
    }

    /// Expire consumer group members whose session or rebalance timeout
    /// passed, and persist the groups that changed.
    pub(super) async fn tick_consumer_groups(&self, entries: &[Arc<GroupEntry>], now: i64) {
        for e in entries {
            let mut inner = e.inner.lock().await;
            let Some(g) = inner.consumer.as_mut() else {
                continue;
            };
            if g.next_deadline().is_none_or(|d| d > now) {
                continue;
            }
            let expired = g.tick(now);
            if expired.is_empty() {
                continue;
            }
            info!(
                group = g.group_id(),
                ?expired,
                "consumer group members expired"
            );
            let snapshot = g.clone();
            if let Err(code) = self.persist_consumer(e.partition, &snapshot).await {
                warn!(
                    group = snapshot.group_id(),
                    code, "could not persist consumer group"
                );
                continue;
            }
            self.downgrade_if_only_classic(e.partition, &mut inner, now)
                .await;
        }
    }
}

/// Rebuild the consumer groups of a replayed partition.
pub(super) fn loaded_consumer_groups(
    replayed: &mut HashMap<String, Option<Box<GroupData>>>,
    config: &crate::group::consumer::ConsumerGroupConfig,
    now: i64,
) -> HashMap<String, ConsumerGroup> {
    replayed
        .drain()
        .filter_map(|(name, data)| {
            data.map(|d| (name, ConsumerGroup::from_data(*d, config.clone(), now)))
        })
        .collect()
}

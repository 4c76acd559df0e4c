//! Classic-protocol members inside a consumer group: the online upgrade
//! of KIP-848 (Kafka's `group.consumer.migration.policy = upgrade`).
//!
//! When the first consumer-protocol member joins a Stable classic group of
//! the `consumer` protocol type, the group becomes a consumer group: every
//! classic member keeps its subscription, its assignment and its generation
//! (as member epoch), so nothing is revoked and nothing is read twice.
//! Classic members go on with JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup, served from the consumer group: a JoinGroup is a heartbeat
//! that reports the partitions the member still owns (none for an eager
//! member, the subscription's owned partitions for a cooperative one) and
//! answers at once with the member epoch as generation; SyncGroup gives the
//! member's current assignment; Heartbeat answers REBALANCE_IN_PROGRESS
//! while the member is not at its target, so that it rejoins. The group
//! then converges like any consumer group. When the last consumer-protocol
//! member leaves (or is expired) and classic members remain, the group is
//! downgraded back to a classic group ([`ConsumerGroup::to_classic`]):
//! members keep their ids, the group epoch becomes the generation, and a
//! rebalance makes them rejoin so that the classic leader assigns again.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError as E;
use serde::{Deserialize, Serialize};

use super::{
    ConsumerGroup, ConsumerGroupConfig, GroupData, Heartbeat, HeartbeatError, Member, MemberState,
    Partitions, Topics,
};
use crate::group::types::{GroupSnapshot, GroupState, MemberSnapshot};

/// What a classic member of a consumer group keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// The protocol (assignor name) it was answered with.
    pub protocol: String,
}

/// A classic JoinGroup for a consumer group.
#[derive(Debug, Clone)]
pub struct ClassicJoin {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` in preference order.
    pub protocols: Vec<(String, Bytes)>,
}

/// The answer to a classic JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoined {
    pub member_id: String,
    pub generation: i32,
    pub protocol: String,
}

/// Topics and owned partitions of a ConsumerProtocolSubscription.
pub fn decode_subscription(bytes: &[u8]) -> Option<(Vec<String>, Partitions)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let s = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    let topics = s.topics.iter().map(|t| t.to_string()).collect();
    let mut owned = Partitions::new();
    for tp in &s.owned_partitions {
        owned
            .entry(tp.topic.to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    Some((topics, owned))
}

/// The partitions of a ConsumerProtocolAssignment (empty bytes: none).
pub fn decode_assignment(bytes: &[u8]) -> Option<Partitions> {
    if bytes.is_empty() {
        return Some(Partitions::new());
    }
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    let mut out = Partitions::new();
    for tp in &a.assigned_partitions {
        out.entry(tp.topic.to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    Some(out)
}

/// A ConsumerProtocolAssignment v0 of `partitions`.
pub fn encode_assignment(partitions: &Partitions) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    if a.encode(&mut buf, 0).is_err() {
        return Bytes::new();
    }
    buf.freeze()
}

/// A ConsumerProtocolSubscription v1 of `topics`, owning `owned`.
pub fn encode_subscription<'a>(
    topics: impl IntoIterator<Item = &'a String>,
    owned: &Partitions,
) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
    let s = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .into_iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            owned
                .iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        );
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    if s.encode(&mut buf, 1).is_err() {
        return Bytes::new();
    }
    buf.freeze()
}

impl ConsumerGroup {
    /// The classic group this consumer group becomes once only classic
    /// members are left (Kafka's `convertToClassicGroup`, the downgrade of
    /// `group.consumer.migration.policy = bidirectional`): the members with
    /// their subscriptions and current assignments, the group epoch as
    /// generation, in PreparingRebalance so that every member rejoins and
    /// the classic leader assigns. `None` while a consumer-protocol member
    /// is left, or when no member is.
    pub fn to_classic(&self, now: i64) -> Option<GroupSnapshot> {
        let members = &self.data.members;
        if members.is_empty() || members.values().any(|m| m.classic.is_none()) {
            return None;
        }
        let protocol = members
            .values()
            .find_map(|m| m.classic.as_ref().map(|c| c.protocol.clone()))?;
        let snapshots = members
            .values()
            .map(|m| {
                let session_timeout_ms = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
                let metadata = encode_subscription(&m.subscribed_topic_names, &m.assigned);
                MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), metadata.to_vec())],
                    assignment: encode_assignment(&m.assigned).to_vec(),
                }
            })
            .collect::<Vec<_>>();
        Some(GroupSnapshot {
            group_id: self.data.group_id.clone(),
            state: GroupState::PreparingRebalance,
            generation_id: self.data.group_epoch,
            protocol_type: Some("consumer".to_string()),
            protocol_name: Some(protocol),
            leader: snapshots.first().map(|m| m.member_id.clone()),
            members: snapshots,
            state_timestamp: now,
        })
    }

    /// The consumer group a Stable classic `consumer` group becomes (Kafka's
    /// `convertToConsumerGroup`); `None` when it cannot be upgraded online.
    pub fn from_classic(
        s: &GroupSnapshot,
        config: ConsumerGroupConfig,
        topics: &Topics,
        now: i64,
    ) -> Option<ConsumerGroup> {
        if s.state != GroupState::Stable || s.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = s.protocol_name.clone()?;
        if s.members.len() >= config.max_size {
            return None;
        }
        let mut data = GroupData {
            group_id: s.group_id.clone(),
            group_epoch: s.generation_id,
            assignment_epoch: s.generation_id,
            ..GroupData::default()
        };
        for m in &s.members {
            let metadata = m.protocols.iter().find(|(n, _)| *n == protocol)?;
            let (subscribed, _) = decode_subscription(&metadata.1)?;
            let assigned = decode_assignment(&m.assignment)?;
            data.target.insert(m.member_id.clone(), assigned.clone());
            data.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    rack_id: None,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topic_names: subscribed.into_iter().collect(),
                    subscribed_topic_regex: None,
                    server_assignor: None,
                    member_epoch: s.generation_id,
                    previous_member_epoch: s.generation_id - 1,
                    state: MemberState::Stable,
                    assigned,
                    pending_revocation: Partitions::new(),
                    classic: Some(ClassicMember {
                        session_timeout_ms: m.session_timeout_ms,
                        protocol: protocol.clone(),
                    }),
                },
            );
        }
        let mut g = ConsumerGroup::from_data(data, config, now);
        g.data.subscription_metadata = g.subscription_metadata(topics);
        Some(g)
    }

    /// A classic member's JoinGroup: subscribe or update it, take the
    /// partitions it still owns as acknowledged revocations, reconcile.
    pub fn classic_join(
        &mut self,
        j: ClassicJoin,
        topics: &Topics,
        now: i64,
    ) -> Result<ClassicJoined, HeartbeatError> {
        let existing = self.data.members.get(&j.member_id);
        // The protocol: the member's current one if it still offers it,
        // else its first decodable one.
        let current = existing
            .and_then(|m| m.classic.as_ref())
            .map(|c| c.protocol.clone());
        let chosen = j
            .protocols
            .iter()
            .find(|(n, _)| Some(n) == current.as_ref())
            .or_else(|| j.protocols.first())
            .ok_or_else(|| HeartbeatError::InconsistentGroupProtocol("no protocols".into()))?;
        let (subscribed, owned) = decode_subscription(&chosen.1).ok_or_else(|| {
            HeartbeatError::InconsistentGroupProtocol("not a consumer subscription".into())
        })?;
        let protocol = chosen.0.clone();
        let hb = Heartbeat {
            member_id: j.member_id.clone(),
            member_epoch: 0,
            instance_id: j.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: j.rebalance_timeout_ms,
            subscribed_topic_names: Some(subscribed),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(owned),
            client_id: j.client_id,
            client_host: j.client_host,
            classic: Some(ClassicMember {
                session_timeout_ms: j.session_timeout_ms,
                protocol: protocol.clone(),
            }),
        };
        let r = self.heartbeat(hb, topics, now)?;
        Ok(ClassicJoined {
            member_id: r.member_id,
            generation: r.member_epoch,
            protocol,
        })
    }

    /// A classic member's SyncGroup: its current assignment.
    pub fn classic_sync(&self, member_id: &str, generation: i32) -> Result<(String, Bytes), i16> {
        let m = self
            .data
            .members
            .get(member_id)
            .ok_or(E::UnknownMemberId.code())?;
        let c = m.classic.as_ref().ok_or(E::UnknownMemberId.code())?;
        if generation != m.member_epoch {
            return Err(E::IllegalGeneration.code());
        }
        Ok((c.protocol.clone(), encode_assignment(&m.assigned)))
    }

    /// A classic member's Heartbeat: REBALANCE_IN_PROGRESS while it is not
    /// at its target (it must rejoin to revoke or to get partitions).
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        topics: &Topics,
        now: i64,
    ) -> i16 {
        let Some(m) = self.data.members.get(member_id) else {
            return E::UnknownMemberId.code();
        };
        let Some(c) = &m.classic else {
            return E::UnknownMemberId.code();
        };
        if generation != m.member_epoch {
            return E::IllegalGeneration.code();
        }
        let session = i64::from(c.session_timeout_ms.max(1));
        self.timers
            .entry(member_id.to_string())
            .or_default()
            .session_deadline = now + session;
        self.last_active = now;
        if now >= self.metadata_refresh_deadline {
            let meta = self.subscription_metadata(topics);
            if meta != self.data.subscription_metadata {
                self.data.subscription_metadata = meta;
                self.data.group_epoch += 1;
            }
            self.metadata_refresh_deadline = now + self.config.metadata_refresh_ms;
        }
        if self.data.group_epoch > self.data.assignment_epoch {
            self.compute_target(topics);
        }
        let Some(m) = self.data.members.get(member_id) else {
            return E::UnknownMemberId.code();
        };
        let target = self.data.target.get(member_id);
        let at_target = m.state == MemberState::Stable
            && m.member_epoch == self.data.assignment_epoch
            && target.is_none_or(|t| *t == m.assigned);
        if at_target {
            0
        } else {
            E::RebalanceInProgress.code()
        }
    }

    /// A classic member's LeaveGroup.
    pub fn classic_leave(&mut self, member_id: &str) -> i16 {
        if self.remove_member(member_id) {
            0
        } else {
            E::UnknownMemberId.code()
        }
    }

    /// Whether `member_id` is a classic member of this group.
    pub fn is_classic_member(&self, member_id: &str) -> bool {
        self.data
            .members
            .get(member_id)
            .is_some_and(|m| m.classic.is_some())
    }
}

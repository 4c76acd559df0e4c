//! The vocabulary shared by the pure group state machine ([`super::state`])
//! and the async coordinator that drives it: requests in, outputs out.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identifies a parked JoinGroup or SyncGroup request so the coordinator
/// can answer it when the state machine decides.
pub type RequestToken = u64;

/// The classic group protocol's states (Kafka's `GroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's ListGroups/DescribeGroups report.
    pub fn as_str(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(protocol name, member metadata)` in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first be given an id
    /// (MEMBER_ID_REQUIRED, KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a rejoining static leader is told to skip
    /// the assignment. Older clients are instead given the old leader id so
    /// they act as followers.
    pub supports_skip_assignment: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The member id assigned to (or confirmed for) the requester.
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; only the
    /// leader receives it, others get an empty list.
    pub members: Vec<JoinedMember>,
    /// KIP-814: the static leader rejoined without a change; it must not
    /// compute a new assignment.
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only from the leader: `(member id, assignment)` for every member.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// What the state machine asks the coordinator to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Answer a parked (or the current) JoinGroup request.
    Join {
        token: RequestToken,
        result: JoinResult,
    },
    /// Answer a parked (or the current) SyncGroup request.
    Sync {
        token: RequestToken,
        result: SyncResult,
    },
    /// Group metadata changed in a way that must survive a coordinator
    /// failover (new generation with its members and assignments, or the
    /// group became empty): write [`GroupSnapshot`] to `__consumer_offsets`.
    Persist,
}

/// A member as DescribeGroups shows it and as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` as the member sent them.
    #[serde(with = "hex_pairs")]
    pub protocols: Vec<(String, Vec<u8>)>,
    #[serde(with = "hex_bytes")]
    pub assignment: Vec<u8>,
}

/// The durable part of a group (Kafka's GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberSnapshot>,
    /// When the state last changed (ms), for offset retention of empty groups.
    pub state_timestamp: i64,
}

/// Opaque client bytes persisted as hex strings: half the size of JSON's
/// number arrays' worst case, and readable in a dump.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(b: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(b.len() * 2);
        for byte in b {
            s.push(DIGITS[(byte >> 4) as usize] as char);
            s.push(DIGITS[(byte & 0x0f) as usize] as char);
        }
        s
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let b = s.as_bytes();
        if !b.len().is_multiple_of(2) {
            return None;
        }
        b.chunks(2)
            .map(|p| Some((nibble(*p.first()?)? << 4) | nibble(*p.get(1)?)?))
            .collect()
    }

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

mod hex_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, String)> = v
            .iter()
            .map(|(n, b)| (n.as_str(), super::hex_bytes::encode(b)))
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let pairs: Vec<(String, String)> = Vec::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(n, h)| {
                super::hex_bytes::decode(&h)
                    .map(|b| (n, b))
                    .ok_or_else(|| serde::de::Error::custom("invalid hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_bytes_persist_as_hex_and_round_trip() {
        let m = MemberSnapshot {
            member_id: "m".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 1,
            rebalance_timeout_ms: 2,
            protocols: vec![("range".into(), vec![0, 255, 16])],
            assignment: vec![1, 2, 171],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains("\"00ff10\"") && json.contains("\"0102ab\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<MemberSnapshot>(&json).unwrap(), m);
        assert!(hex_bytes::decode("0g").is_none());
        assert!(hex_bytes::decode("abc").is_none());
    }
}

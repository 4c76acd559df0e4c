//! The errors of a ConsumerGroupHeartbeat, each one Kafka error code.

use kafka_protocol::ResponseError as E;
use thiserror::Error;

/// Why a heartbeat was refused; each is one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeartbeatError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("member {0} is unknown")]
    UnknownMemberId(String),
    #[error("member epoch {received} does not match {expected}: abandon partitions and rejoin")]
    FencedMemberEpoch { received: i32, expected: i32 },
    #[error("instance id {0} is still used by another member")]
    UnreleasedInstanceId(String),
    #[error("instance id {0} belongs to another member")]
    FencedInstanceId(String),
    #[error("the group has reached its maximum size of {0}")]
    GroupMaxSizeReached(usize),
    #[error("server assignor {0} is not supported")]
    UnsupportedAssignor(String),
    #[error("invalid regular expression {0}: {1}")]
    InvalidRegularExpression(String, String),
    #[error("the member's protocols are not supported by the group: {0}")]
    InconsistentGroupProtocol(String),
}

impl HeartbeatError {
    pub fn code(&self) -> i16 {
        match self {
            HeartbeatError::InvalidRequest(_) => E::InvalidRequest.code(),
            HeartbeatError::UnknownMemberId(_) => E::UnknownMemberId.code(),
            HeartbeatError::FencedMemberEpoch { .. } => E::FencedMemberEpoch.code(),
            HeartbeatError::UnreleasedInstanceId(_) => E::UnreleasedInstanceId.code(),
            HeartbeatError::FencedInstanceId(_) => E::FencedInstanceId.code(),
            HeartbeatError::GroupMaxSizeReached(_) => E::GroupMaxSizeReached.code(),
            HeartbeatError::UnsupportedAssignor(_) => E::UnsupportedAssignor.code(),
            HeartbeatError::InvalidRegularExpression(..) => E::InvalidRegularExpression.code(),
            HeartbeatError::InconsistentGroupProtocol(_) => E::InconsistentGroupProtocol.code(),
        }
    }
}

//! The one place internal errors become Kafka error codes.

use kafka_protocol::ResponseError as E;
use rivulet_controller::logic::ControllerError;
use rivulet_controller::ControllerResponse;
use rivulet_protocol::{BatchError, RecordError};
use rivulet_storage::{RejectReason, StorageError};

use crate::replication::AckError;

pub const NONE: i16 = 0;

pub fn code(e: E) -> i16 {
    e.code()
}

/// A storage failure on a produce, fetch or offsets path.
pub fn storage(e: &StorageError) -> i16 {
    match e {
        // What Kafka's LogValidator refuses with InvalidRecordException:
        // a producer's control batch (only the broker writes transaction
        // markers), a count that does not match the offsets, an idempotent
        // batch without a sequence, records that do not parse.
        StorageError::InvalidBatch(
            BatchError::ControlBatchFromClient
            | BatchError::BadRecordCount { .. }
            | BatchError::MissingSequence { .. },
        )
        | StorageError::Records(RecordError::Malformed(_)) => E::InvalidRecord.code(),
        StorageError::RecordsRejected(r) => match r.reason {
            RejectReason::InvalidRecord => E::InvalidRecord.code(),
            RejectReason::InvalidTimestamp => E::InvalidTimestamp.code(),
        },
        // Records that decompress past the broker's limit.
        StorageError::Records(RecordError::TooLarge { .. }) => E::MessageTooLarge.code(),
        // A bad CRC or header, a payload that does not decompress.
        StorageError::InvalidBatch(_) | StorageError::Records(_) => E::CorruptMessage.code(),
        StorageError::RecordTooLarge { .. } => E::MessageTooLarge.code(),
        StorageError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        StorageError::UnknownPartition(_) => E::UnknownTopicOrPartition.code(),
        StorageError::InvalidTopicName { .. } | StorageError::InvalidPartitionDir(_) => {
            E::InvalidTopicException.code()
        }
        StorageError::Config(_) => E::InvalidConfig.code(),
        StorageError::Io { .. }
        | StorageError::LogOffline(_)
        | StorageError::CorruptCheckpoint { .. } => E::KafkaStorageError.code(),
        _ => E::UnknownServerError.code(),
    }
}

/// A controller decision's error.
pub fn controller(e: &ControllerError) -> i16 {
    match e {
        ControllerError::TopicAlreadyExists(_) => E::TopicAlreadyExists.code(),
        ControllerError::UnknownTopic(_) | ControllerError::UnknownPartition(..) => {
            E::UnknownTopicOrPartition.code()
        }
        ControllerError::InvalidTopicName(_) => E::InvalidTopicException.code(),
        ControllerError::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor.code(),
        ControllerError::InvalidPartitions(_) => E::InvalidPartitions.code(),
        ControllerError::InvalidConfig(_) => E::InvalidConfig.code(),
        ControllerError::UnknownBroker(_) => E::BrokerNotAvailable.code(),
        ControllerError::NotLeader(_) => E::NotLeaderOrFollower.code(),
        ControllerError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch.code(),
        ControllerError::InvalidUpdateVersion { .. } => E::InvalidUpdateVersion.code(),
        ControllerError::IneligibleReplica(_) => E::IneligibleReplica.code(),
        ControllerError::TooManyAcls(_) => E::InvalidRequest.code(),
        ControllerError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment.code(),
        ControllerError::InvalidRequest(_) => E::InvalidRequest.code(),
        ControllerError::PartitionLimit(_) => E::PolicyViolation.code(),
    }
}

/// `(error code, message)` for a controller response that is not plain success.
pub fn controller_response(r: &ControllerResponse) -> (i16, Option<String>) {
    match r {
        ControllerResponse::Ok { .. }
        | ControllerResponse::ProducerIds { .. }
        | ControllerResponse::AclsDeleted { .. } => (NONE, None),
        ControllerResponse::Error(e) => (controller(e), Some(e.to_string())),
        ControllerResponse::NotController { .. } => {
            (E::NotController.code(), Some("no active controller".into()))
        }
        ControllerResponse::StaleBrokerEpoch => (E::StaleBrokerEpoch.code(), None),
        ControllerResponse::ScramResults { .. }
        | ControllerResponse::ClientQuotaResults { .. }
        | ControllerResponse::Quorum(_) => (NONE, None),
        ControllerResponse::Elections { .. } => (NONE, None),
        ControllerResponse::Reassignments { .. } => (NONE, None),
    }
}

/// A refused config resource (DescribeConfigs, AlterConfigs,
/// IncrementalAlterConfigs), as Kafka's `ConfigHelper`/`ControllerApis`
/// answer it: malformed requests are INVALID_REQUEST, a list operation on a
/// scalar key INVALID_CONFIG.
pub fn config_resource(e: &crate::topic_configs::ConfigResourceError) -> i16 {
    use crate::topic_configs::ConfigResourceError as C;
    match e {
        C::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
        C::InvalidTopicName(_) => E::InvalidTopicException.code(),
        C::NotAList { .. } | C::InvalidValue { .. } => E::InvalidConfig.code(),
        C::UnsupportedResourceType(_)
        | C::UnexpectedBrokerId { .. }
        | C::NotDynamic(_)
        | C::DuplicateResource(_)
        | C::DuplicateKey(_)
        | C::UnknownOperation { .. }
        | C::NullValue(_) => E::InvalidRequest.code(),
    }
}

/// No producer id could be handed out (no active controller, or this broker
/// not registered yet). Kafka answers COORDINATOR_LOAD_IN_PROGRESS while its
/// next id block is on the way; every client retries it.
pub fn producer_id_allocation(r: &ControllerResponse) -> i16 {
    match r {
        ControllerResponse::Ok { .. } | ControllerResponse::ProducerIds { .. } => NONE,
        _ => E::CoordinatorLoadInProgress.code(),
    }
}

/// Why an `acks=all` produce was not acknowledged after its append.
pub fn acks_all(e: AckError) -> i16 {
    match e {
        AckError::NotLeaderOrFollower => E::NotLeaderOrFollower.code(),
        AckError::NotEnoughReplicasAfterAppend => E::NotEnoughReplicasAfterAppend.code(),
        AckError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
    }
}

/// A coordinator's write to its internal topic (acks=all) as its clients
/// should see it, as Kafka's GroupMetadataManager and
/// TransactionStateManager: leadership gone is NOT_COORDINATOR, a write
/// that did not commit is COORDINATOR_NOT_AVAILABLE.
pub fn coordinator_append(code: i16) -> Result<(), i16> {
    match code {
        0 => Ok(()),
        c if c == E::NotLeaderOrFollower.code() || c == E::UnknownTopicOrPartition.code() => {
            Err(E::NotCoordinator.code())
        }
        c if c == E::NotEnoughReplicas.code()
            || c == E::NotEnoughReplicasAfterAppend.code()
            || c == E::RequestTimedOut.code() =>
        {
            Err(E::CoordinatorNotAvailable.code())
        }
        c => Err(c),
    }
}

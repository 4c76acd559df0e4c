//! Replica placement APIs, as Kafka's `KafkaApis`/`ControllerApis`
//! authorize them: ElectLeaders and AlterPartitionReassignments need ALTER
//! on the cluster, ListPartitionReassignments DESCRIBE; a refused request
//! is answered with CLUSTER_AUTHORIZATION_FAILED and nothing done.

use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    RequestKind, ResponseKind,
};
use rivulet_controller::acl::AclOperation::{Alter, Describe};

use super::{serve, Checked, CLUSTER_DENIED};
use crate::authorizer::Authz;

pub(super) fn elect_leaders(z: &Authz, r: ElectLeadersRequest) -> Checked {
    if z.cluster(Alter) {
        return serve(RequestKind::ElectLeaders(r), None);
    }
    Checked::Respond(Some(ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_error_code(CLUSTER_DENIED),
    )))
}

pub(super) fn alter_partition_reassignments(
    z: &Authz,
    r: AlterPartitionReassignmentsRequest,
) -> Checked {
    if z.cluster(Alter) {
        return serve(RequestKind::AlterPartitionReassignments(r), None);
    }
    Checked::Respond(Some(ResponseKind::AlterPartitionReassignments(
        AlterPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
    )))
}

pub(super) fn list_partition_reassignments(
    z: &Authz,
    r: ListPartitionReassignmentsRequest,
) -> Checked {
    if z.cluster(Describe) {
        return serve(RequestKind::ListPartitionReassignments(r), None);
    }
    Checked::Respond(Some(ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
    )))
}

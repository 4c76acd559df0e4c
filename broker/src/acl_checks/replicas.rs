//! Replica placement APIs, as Kafka's `KafkaApis`/`ControllerApis`
//! authorize them: ElectLeaders and AlterPartitionReassignments need ALTER
//! on the cluster, ListPartitionReassignments DESCRIBE; a refused request
//! is answered with CLUSTER_AUTHORIZATION_FAILED and nothing done.

use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, RequestKind, ResponseKind,
};
use rivulet_controller::acl::AclOperation::Alter;

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

//! CreateAcls: each valid creation is stored through the controller (one
//! request for all, an ACL already present is not added twice); an invalid
//! one is INVALID_REQUEST with Kafka's message and the rest still created.
//! Answered once this node's image holds the new ACLs, so the client's next
//! DescribeAcls here sees them. SECURITY_DISABLED without an authorizer.

use std::time::Duration;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::acl_wire::{binding, WireAcl};
use super::sb;
use crate::context::BrokerContext;
use crate::errors;

/// Longest the answer waits for the local image to catch up.
pub(super) const APPLY_WAIT: Duration = Duration::from_secs(10);

pub async fn handle(
    b: &BrokerContext,
    req: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    if b.config.authorizer.is_none() {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(E::SecurityDisabled.code())
                    .with_error_message(Some(sb("No Authorizer is configured.")))
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<_> = req
        .creations
        .iter()
        .map(|c| {
            binding(&WireAcl {
                resource_type: c.resource_type,
                resource_name: c.resource_name.as_str(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.as_str(),
                host: c.host.as_str(),
                operation: c.operation,
                permission: c.permission_type,
            })
        })
        .collect();
    let valid: Vec<_> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let (code, message) = if valid.is_empty() {
        (errors::NONE, None)
    } else {
        let resp = b
            .controller_request(ControllerRequest::CreateAcls { acls: valid })
            .await;
        if let ControllerResponse::Ok { offset } = resp {
            b.wait_until(APPLY_WAIT, |image| image.offset >= offset)
                .await;
        }
        errors::controller_response(&resp)
    };
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message.clone().map(sb)),
            Err(e) => AclCreationResult::default()
                .with_error_code(E::InvalidRequest.code())
                .with_error_message(Some(sb(e.to_string()))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

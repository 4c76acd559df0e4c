//! DeleteAcls: every ACL the valid filters match is removed in one
//! controller decision (atomic: the filters are resolved against one
//! image), and each filter is answered with the ACLs it matched. A filter
//! with unknown codes is INVALID_REQUEST; SECURITY_DISABLED without an
//! authorizer.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::{ControllerRequest, ControllerResponse};

use super::acl_wire::{filter, WireFilter};
use super::create_acls::APPLY_WAIT;
use super::sb;
use crate::context::BrokerContext;
use crate::errors;

pub async fn handle(
    b: &BrokerContext,
    req: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    if b.config.authorizer.is_none() {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(E::SecurityDisabled.code())
                    .with_error_message(Some(sb("No Authorizer is configured.")))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<_> = req
        .filters
        .iter()
        .map(|f| {
            filter(&WireFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_deref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_deref(),
                host: f.host_filter.as_deref(),
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let valid: Vec<_> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().and_then(|f| f.clone()))
        .collect();
    let mut matched = Vec::new();
    let mut failure = None;
    if !valid.is_empty() {
        let resp = b
            .controller_request(ControllerRequest::DeleteAcls { filters: valid })
            .await;
        match resp {
            ControllerResponse::AclsDeleted { offset, matched: m } => {
                b.wait_until(APPLY_WAIT, |image| image.offset >= offset)
                    .await;
                matched = m;
            }
            other => failure = Some(errors::controller_response(&other)),
        }
    }
    let mut matched = matched.into_iter();
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(e) => DeleteAclsFilterResult::default()
                .with_error_code(E::InvalidRequest.code())
                .with_error_message(Some(sb(e.to_string()))),
            // A filter on a resource type never stored matches nothing.
            Ok(None) => DeleteAclsFilterResult::default(),
            Ok(Some(_)) => match &failure {
                Some((code, message)) => DeleteAclsFilterResult::default()
                    .with_error_code(*code)
                    .with_error_message(message.clone().map(sb)),
                None => DeleteAclsFilterResult::default().with_matching_acls(
                    matched
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.resource_type.code())
                                .with_resource_name(sb(acl.resource_name))
                                .with_pattern_type(acl.pattern_type.code())
                                .with_principal(sb(acl.principal))
                                .with_host(sb(acl.host))
                                .with_operation(acl.operation.code())
                                .with_permission_type(acl.permission.code())
                        })
                        .collect(),
                ),
            },
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

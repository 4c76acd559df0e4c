//! DescribeAcls: the ACLs of the metadata image a filter matches, grouped
//! by resource pattern. SECURITY_DISABLED without an authorizer and
//! INVALID_REQUEST for a filter with unknown codes, as Kafka; the
//! authorization (DESCRIBE on the cluster) is [`crate::acl_checks`]'.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError as E;

use super::acl_wire::{filter, WireFilter};
use super::sb;
use crate::context::BrokerContext;

pub fn handle(b: &BrokerContext, req: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    if b.config.authorizer.is_none() {
        return DescribeAclsResponse::default()
            .with_error_code(E::SecurityDisabled.code())
            .with_error_message(Some(sb("No Authorizer is configured on the broker")));
    }
    let parsed = filter(&WireFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.as_deref(),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.as_deref(),
        host: req.host_filter.as_deref(),
        operation: req.operation,
        permission: req.permission_type,
    });
    let f = match parsed {
        Ok(Some(f)) => f,
        Ok(None) => return DescribeAclsResponse::default(),
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(E::InvalidRequest.code())
                .with_error_message(Some(sb(e.to_string())))
        }
    };
    let image = b.image();
    let mut by_pattern: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for (_, acl) in image.acls.matching(&f) {
        by_pattern
            .entry((
                acl.resource_type.code(),
                acl.resource_name.as_str(),
                acl.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(acl.principal.clone()))
                    .with_host(sb(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    let resources = by_pattern
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(sb(name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

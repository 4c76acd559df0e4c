//! `rivulet acl add|list|remove`: ACLs through Kafka's CreateAcls,
//! DescribeAcls and DeleteAcls (v3), with `kafka-acls.sh`'s options:
//! `--allow-principal/--deny-principal`, `--allow-host/--deny-host`
//! (default `*`), `--operation` (repeatable), the resources `--topic`,
//! `--group`, `--cluster`, `--transactional-id` (repeatable),
//! `--resource-pattern-type literal|prefixed|match|any`, and the
//! `--producer` / `--consumer` conveniences (WRITE, DESCRIBE, CREATE on the
//! topics, plus IDEMPOTENT_WRITE with `--idempotent`, WRITE/DESCRIBE on
//! `--transactional-id`; READ, DESCRIBE on the topics and READ on the
//! groups). librdkafka's C admin API is not wrapped by the rdkafka crate,
//! so these go over Rivulet's own Kafka wire client to the first broker of
//! the bootstrap list that answers, over TLS and/or SASL as
//! `--command-config FILE` says (see [`crate::wire_client`]).

use crate::wire_client::{connect, Connection};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use rivulet_controller::acl::{
    AclOperation, AclPermission, PatternType, ResourceType, ANY_CODE, CLUSTER_NAME, MATCH_CODE,
};

/// The ACL APIs' version spoken (flexible, pattern types).
const VERSION: i16 = 3;

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Add ACLs: every principal × host × operation on every resource.
    Add(AclArgs),
    /// List the ACLs on the resources given (every ACL without any).
    List(AclArgs),
    /// Remove the ACLs matching the options (all of a resource's ACLs when
    /// no principal or operation is given).
    Remove(AclArgs),
}

#[derive(Debug, Args, Default)]
pub struct AclArgs {
    /// Principal allowed (`User:alice`); repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    pub allow_principals: Vec<String>,
    /// Principal denied; repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    pub deny_principals: Vec<String>,
    /// Host the allow principals are allowed from (default `*`).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Host the deny principals are denied from (default `*`).
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_hosts: Vec<String>,
    /// Operation (Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All);
    /// repeatable.
    #[arg(long = "operation", value_name = "OPERATION")]
    pub operations: Vec<String>,
    /// Topic (or prefix); repeatable.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Consumer group (or prefix); repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The cluster resource.
    #[arg(long)]
    pub cluster: bool,
    /// Transactional id (or prefix); repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_ids: Vec<String>,
    /// literal (default for add/remove), prefixed, match or any (default
    /// for list).
    #[arg(long = "resource-pattern-type", value_name = "TYPE")]
    pub pattern_type: Option<String>,
    /// For `list`: only the ACLs of this principal.
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// Producer convenience: WRITE, DESCRIBE, CREATE on the topics.
    #[arg(long)]
    pub producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster too.
    #[arg(long)]
    pub idempotent: bool,
    /// Consumer convenience: READ, DESCRIBE on the topics, READ on the groups.
    #[arg(long)]
    pub consumer: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// A resource pattern selected by the options.
type Resource = (ResourceType, String);

fn resources(a: &AclArgs) -> Vec<Resource> {
    let mut out = Vec::new();
    out.extend(a.topics.iter().map(|t| (ResourceType::Topic, t.clone())));
    out.extend(a.groups.iter().map(|g| (ResourceType::Group, g.clone())));
    out.extend(
        a.transactional_ids
            .iter()
            .map(|t| (ResourceType::TransactionalId, t.clone())),
    );
    if a.cluster {
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    out
}

fn parse_operation(s: &str) -> anyhow::Result<AclOperation> {
    // Kafka's CLI spells them in CamelCase (ClusterAction).
    let mut snake = String::new();
    for (i, c) in s.trim().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !snake.ends_with('_') {
            snake.push('_');
        }
        snake.push(c);
    }
    AclOperation::parse(&snake)
        .or_else(|| AclOperation::parse(s))
        .ok_or_else(|| anyhow!("unknown operation '{s}'"))
}

/// `(pattern code for filters, pattern type for creations)`.
fn pattern(a: &AclArgs, default: &str) -> anyhow::Result<(i8, Option<PatternType>)> {
    let p = a
        .pattern_type
        .as_deref()
        .unwrap_or(default)
        .to_ascii_lowercase();
    Ok(match p.as_str() {
        "literal" => (PatternType::Literal.code(), Some(PatternType::Literal)),
        "prefixed" => (PatternType::Prefixed.code(), Some(PatternType::Prefixed)),
        "match" => (MATCH_CODE, None),
        "any" => (ANY_CODE, None),
        other => {
            bail!("unknown --resource-pattern-type '{other}': literal, prefixed, match or any")
        }
    })
}

/// One ACL to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    resource: Resource,
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermission,
}

/// The ACLs the options describe (kafka-acls.sh's expansion).
fn entries(a: &AclArgs) -> anyhow::Result<Vec<Entry>> {
    let mut ops: Vec<(ResourceType, AclOperation)> = Vec::new();
    let explicit: Vec<AclOperation> = a
        .operations
        .iter()
        .map(|o| parse_operation(o))
        .collect::<anyhow::Result<_>>()?;
    if a.producer {
        for op in [
            AclOperation::Write,
            AclOperation::Describe,
            AclOperation::Create,
        ] {
            ops.push((ResourceType::Topic, op));
        }
        for op in [AclOperation::Write, AclOperation::Describe] {
            ops.push((ResourceType::TransactionalId, op));
        }
        if a.idempotent {
            ops.push((ResourceType::Cluster, AclOperation::IdempotentWrite));
        }
    }
    if a.consumer {
        ops.push((ResourceType::Topic, AclOperation::Read));
        ops.push((ResourceType::Topic, AclOperation::Describe));
        ops.push((ResourceType::Group, AclOperation::Read));
    }
    let mut resources = resources(a);
    if a.producer && a.idempotent && !resources.iter().any(|r| r.0 == ResourceType::Cluster) {
        resources.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    let mut out = Vec::new();
    let who = |principals: &[String], hosts: &[String], permission| {
        let hosts = if hosts.is_empty() {
            vec!["*".to_string()]
        } else {
            hosts.to_vec()
        };
        principals
            .iter()
            .flat_map(move |p| {
                hosts
                    .clone()
                    .into_iter()
                    .map(move |h| (p.clone(), h, permission))
            })
            .collect::<Vec<_>>()
    };
    let mut people = who(&a.allow_principals, &a.allow_hosts, AclPermission::Allow);
    people.extend(who(&a.deny_principals, &a.deny_hosts, AclPermission::Deny));
    for r in &resources {
        let mut r_ops: Vec<AclOperation> = explicit.clone();
        r_ops.extend(ops.iter().filter(|(t, _)| *t == r.0).map(|(_, o)| *o));
        for op in r_ops {
            for (principal, host, permission) in &people {
                let e = Entry {
                    resource: r.clone(),
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: op,
                    permission: *permission,
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    Ok(out)
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Send `req` to the first bootstrap broker that answers, connected as
/// `--command-config` says.
async fn call<R: Request>(
    bootstrap: &str,
    connection: &Connection,
    req: &R,
) -> anyhow::Result<R::Response> {
    let mut client = connect(bootstrap, connection).await?;
    client
        .round_trip(VERSION, req)
        .await
        .map_err(|e| anyhow!("{bootstrap}: {e}"))
}

fn error(code: i16, message: &Option<StrBytes>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"));
    match message {
        Some(m) if !m.is_empty() => bail!("{name}: {}", m.as_str()),
        _ => bail!("{name}"),
    }
}

fn name_of<T: Copy>(code: i8, from: fn(i8) -> Option<T>, name: fn(T) -> &'static str) -> String {
    from(code)
        .map(|v| name(v).to_string())
        .unwrap_or_else(|| code.to_string())
}

pub fn run(bootstrap: &str, command: AclCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async {
        match command {
            AclCommand::Add(a) => add(bootstrap, &a).await,
            AclCommand::List(a) => list(bootstrap, &a).await,
            AclCommand::Remove(a) => remove(bootstrap, &a).await,
        }
    })
}

async fn add(bootstrap: &str, a: &AclArgs) -> anyhow::Result<()> {
    let (_, Some(pattern)) = pattern(a, "literal")? else {
        bail!("add needs --resource-pattern-type literal or prefixed");
    };
    let entries = entries(a)?;
    if entries.is_empty() {
        bail!("nothing to add: give a resource (--topic, --group, --cluster, --transactional-id), a principal (--allow-principal/--deny-principal) and --operation (or --producer/--consumer)");
    }
    let creations = entries
        .iter()
        .map(|e| {
            AclCreation::default()
                .with_resource_type(e.resource.0.code())
                .with_resource_name(sb(&e.resource.1))
                .with_resource_pattern_type(pattern.code())
                .with_principal(sb(&e.principal))
                .with_host(sb(&e.host))
                .with_operation(e.operation.code())
                .with_permission_type(e.permission.code())
        })
        .collect();
    let resp = call(
        bootstrap,
        &a.connection,
        &CreateAclsRequest::default().with_creations(creations),
    )
    .await?;
    for (e, r) in entries.iter().zip(&resp.results) {
        error(r.error_code, &r.error_message).with_context(|| {
            format!(
                "adding {} {} {} from {} on {}:{}",
                e.permission, e.principal, e.operation, e.host, e.resource.0, e.resource.1
            )
        })?;
        println!(
            "added: {}:{}:{} (principal={}, host={}, operation={}, permissionType={})",
            e.resource.0, pattern, e.resource.1, e.principal, e.host, e.operation, e.permission
        );
    }
    Ok(())
}

async fn list(bootstrap: &str, a: &AclArgs) -> anyhow::Result<()> {
    let (pattern_code, _) = pattern(a, "any")?;
    let mut filters: Vec<(i8, Option<String>)> = resources(a)
        .into_iter()
        .map(|(t, n)| (t.code(), Some(n)))
        .collect();
    if filters.is_empty() {
        filters.push((ANY_CODE, None));
    }
    for (rt, name) in filters {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.as_deref().map(sb))
            .with_pattern_type_filter(pattern_code)
            .with_principal_filter(a.principal.as_deref().map(sb))
            .with_host_filter(None)
            .with_operation(ANY_CODE)
            .with_permission_type(ANY_CODE);
        let resp = call(bootstrap, &a.connection, &req).await?;
        error(resp.error_code, &resp.error_message)?;
        for r in &resp.resources {
            println!(
                "Current ACLs for resource `ResourcePattern(resourceType={}, name={}, patternType={})`:",
                name_of(r.resource_type, ResourceType::from_code, ResourceType::name),
                r.resource_name.as_str(),
                name_of(r.pattern_type, PatternType::from_code, PatternType::name),
            );
            for acl in &r.acls {
                println!(
                    " \t(principal={}, host={}, operation={}, permissionType={})",
                    acl.principal.as_str(),
                    acl.host.as_str(),
                    name_of(acl.operation, AclOperation::from_code, AclOperation::name),
                    name_of(
                        acl.permission_type,
                        AclPermission::from_code,
                        AclPermission::name
                    ),
                );
            }
            println!();
        }
    }
    Ok(())
}

async fn remove(bootstrap: &str, a: &AclArgs) -> anyhow::Result<()> {
    let (pattern_code, _) = pattern(a, "literal")?;
    let resources = resources(a);
    if resources.is_empty() && !a.producer && !a.consumer {
        bail!("remove needs a resource: --topic, --group, --cluster or --transactional-id");
    }
    let entries = entries(a)?;
    let filters: Vec<DeleteAclsFilter> = if entries.is_empty() {
        // No principal or operation: every ACL of the resources.
        resources
            .iter()
            .map(|(t, n)| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(t.code())
                    .with_resource_name_filter(Some(sb(n)))
                    .with_pattern_type_filter(pattern_code)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(ANY_CODE)
                    .with_permission_type(ANY_CODE)
            })
            .collect()
    } else {
        entries
            .iter()
            .map(|e| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(e.resource.0.code())
                    .with_resource_name_filter(Some(sb(&e.resource.1)))
                    .with_pattern_type_filter(pattern_code)
                    .with_principal_filter(Some(sb(&e.principal)))
                    .with_host_filter(Some(sb(&e.host)))
                    .with_operation(e.operation.code())
                    .with_permission_type(e.permission.code())
            })
            .collect()
    };
    let resp = call(
        bootstrap,
        &a.connection,
        &DeleteAclsRequest::default().with_filters(filters),
    )
    .await?;
    let mut removed = 0;
    for r in &resp.filter_results {
        error(r.error_code, &r.error_message)?;
        for m in &r.matching_acls {
            removed += 1;
            println!(
                "removed: {}:{}:{} (principal={}, host={}, operation={}, permissionType={})",
                name_of(m.resource_type, ResourceType::from_code, ResourceType::name),
                name_of(m.pattern_type, PatternType::from_code, PatternType::name),
                m.resource_name.as_str(),
                m.principal.as_str(),
                m.host.as_str(),
                name_of(m.operation, AclOperation::from_code, AclOperation::name),
                name_of(
                    m.permission_type,
                    AclPermission::from_code,
                    AclPermission::name
                ),
            );
        }
    }
    eprintln!("{removed} ACL(s) removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_in_kafkas_spellings() {
        assert_eq!(parse_operation("Read").unwrap(), AclOperation::Read);
        assert_eq!(
            parse_operation("ClusterAction").unwrap(),
            AclOperation::ClusterAction
        );
        assert_eq!(
            parse_operation("DESCRIBE_CONFIGS").unwrap(),
            AclOperation::DescribeConfigs
        );
        assert_eq!(
            parse_operation("idempotent-write").unwrap(),
            AclOperation::IdempotentWrite
        );
        assert!(parse_operation("Fly").is_err());
    }

    #[test]
    fn consumer_and_producer_expand_as_kafka_acls() {
        let a = AclArgs {
            allow_principals: vec!["User:a".into()],
            topics: vec!["t".into()],
            groups: vec!["g".into()],
            consumer: true,
            ..AclArgs::default()
        };
        let got: Vec<_> = entries(&a)
            .unwrap()
            .into_iter()
            .map(|e| (e.resource.0, e.operation))
            .collect();
        assert_eq!(
            got,
            [
                (ResourceType::Topic, AclOperation::Read),
                (ResourceType::Topic, AclOperation::Describe),
                (ResourceType::Group, AclOperation::Read),
            ]
        );
        let a = AclArgs {
            deny_principals: vec!["User:b".into()],
            topics: vec!["t".into()],
            producer: true,
            idempotent: true,
            ..AclArgs::default()
        };
        let got = entries(&a).unwrap();
        assert_eq!(got.len(), 4);
        assert!(got
            .iter()
            .all(|e| e.permission == AclPermission::Deny && e.host == "*"));
        assert!(got.iter().any(|e| e.resource.0 == ResourceType::Cluster
            && e.operation == AclOperation::IdempotentWrite));
    }
}

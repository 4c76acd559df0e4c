//! `rivulet group describe` for KIP-848 consumer groups
//! (`group.protocol=consumer`). DescribeGroups (all librdkafka offers here)
//! reports such a group as `Dead`, so the command asks the group's
//! coordinator with ConsumerGroupDescribe over the broker library's own
//! client: the protocol, the group and assignment epochs, and each member's
//! epoch with its current and target assignments.

use std::time::Duration;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, FindCoordinatorRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::wire;

use super::consumer_protocol::Assignment as Partitions;
use crate::wire_client::Connection;

/// GROUP_ID_NOT_FOUND: no consumer group of that name.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// One member of a consumer group.
#[derive(Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub epoch: i32,
    pub client_id: String,
    pub host: String,
    pub current: Partitions,
    pub target: Partitions,
}

/// A consumer group as its coordinator describes it.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMember>,
}

fn partitions(a: &Assignment) -> Partitions {
    let mut out = Partitions::new();
    for tp in &a.topic_partitions {
        out.entry(tp.topic_name.to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    out
}

/// The consumer group `group`, or `None` when there is none by that name.
pub fn describe(
    bootstrap: &str,
    connection: &Connection,
    group: &str,
    timeout: Duration,
) -> anyhow::Result<Option<ConsumerGroup>> {
    let first = bootstrap
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("no bootstrap server"))?
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let group = group.to_string();
    let connector = connection.connector()?;
    let ask = async move {
        let mut client = wire::connect_with(&connector, first.as_str())
            .await?
            .with_timeout(timeout);
        let found = client
            .round_trip(
                3,
                &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.clone())),
            )
            .await?;
        if found.error_code != 0 {
            bail!(
                "cannot find the coordinator of group {group}: error {}",
                found.error_code
            );
        }
        let addr = format!("{}:{}", found.host.as_str(), found.port);
        let mut coordinator = wire::connect_with(&connector, addr.as_str())
            .await?
            .with_timeout(timeout);
        let described = coordinator
            .round_trip(
                0,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(StrBytes::from_string(group.clone()))]),
            )
            .await?;
        let Some(g) = described.groups.into_iter().next() else {
            bail!("the coordinator described no group");
        };
        convert(g)
    };
    rt.block_on(async { tokio::time::timeout(timeout * 2, ask).await })
        .map_err(|_| anyhow!("ConsumerGroupDescribe timed out"))?
}

fn convert(g: DescribedGroup) -> anyhow::Result<Option<ConsumerGroup>> {
    match g.error_code {
        0 => {}
        GROUP_ID_NOT_FOUND => return Ok(None),
        code => bail!(
            "cannot describe consumer group {}: error {code} {}",
            g.group_id.as_str(),
            g.error_message.as_deref().unwrap_or_default()
        ),
    }
    Ok(Some(ConsumerGroup {
        state: g.group_state.to_string(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor_name.to_string(),
        members: g
            .members
            .iter()
            .map(|m| ConsumerMember {
                id: m.member_id.to_string(),
                instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
                epoch: m.member_epoch,
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                current: partitions(&m.assignment),
                target: partitions(&m.target_assignment),
            })
            .collect(),
    }))
}

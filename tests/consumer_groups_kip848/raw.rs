//! What librdkafka cannot show: heartbeat errors, describe and list over the
//! raw protocol.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_errors_describe_and_list_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), FAST).await;
    let bs = broker.bootstrap();
    create_topic(&bs, "errs", 3, &[]).await;
    let mut raw = Raw::connect(&bs).await;
    let hb = |group: &str, member: &str, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("errs"))]))
            .with_topic_partitions(Some(vec![]))
    };
    let r = raw
        .send(hb("g-errs", "m1", 0).with_server_assignor(Some(StrBytes::from_static_str("nope"))))
        .await;
    assert_eq!(r.error_code, 112, "UNSUPPORTED_ASSIGNOR");
    let r = raw
        .send(
            hb("g-errs", "m1", 0)
                .with_subscribed_topic_regex(Some(StrBytes::from_static_str("(("))),
        )
        .await;
    assert_eq!(r.error_code, 128, "INVALID_REGULAR_EXPRESSION");
    let r = raw
        .send(hb("g-errs", "m1", 0).with_server_assignor(Some(StrBytes::from_static_str("range"))))
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, 1);
    let ids: BTreeSet<i32> = r
        .assignment
        .as_ref()
        .map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, BTreeSet::from([0, 1, 2]));
    let r2 = raw.send(hb("g-errs", "m1", 5)).await;
    assert_eq!(r2.error_code, 110, "FENCED_MEMBER_EPOCH");
    let r2 = raw.send(hb("g-errs", "ghost", 3)).await;
    assert_eq!(r2.error_code, 25, "UNKNOWN_MEMBER_ID");
    // Offsets: a stale epoch is refused, the current one accepted.
    for (epoch, code) in [(0, 113), (1, 0)] {
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g-errs")))
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("errs")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(7),
                    ]),
            ]);
        let resp = raw.stream.round_trip(9, &commit).await.unwrap();
        assert_eq!(
            resp.topics[0].partitions[0].error_code, code,
            "commit at epoch {epoch}"
        );
    }
    // A classic member whose metadata is no consumer subscription cannot
    // join a consumer group.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g-errs")))
        .with_member_id(StrBytes::from_static_str(""))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))]);
    let j = raw.stream.round_trip(5, &join).await.unwrap();
    assert_eq!(j.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // Describe and list.
    let d = raw.describe("g-errs").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.assignor_name.as_str(), "range");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_epoch, 1);
    let missing = raw.describe("no-such-group").await;
    assert_eq!(missing.error_code, 69, "GROUP_ID_NOT_FOUND");
    let list =
        ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("consumer")]);
    let l = raw.stream.round_trip(5, &list).await.unwrap();
    let listed: Vec<(String, String)> = l
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_type.to_string()))
        .collect();
    assert_eq!(listed, vec![("g-errs".to_string(), "consumer".to_string())]);
    let classic_only =
        ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("classic")]);
    let l = raw.stream.round_trip(5, &classic_only).await.unwrap();
    assert!(l.groups.is_empty());
    // Leaving: epoch -1 answers -1 and frees the group.
    let r = raw.send(hb("g-errs", "m1", -1)).await;
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(raw.describe("g-errs").await.group_state.as_str(), "Empty");
}

/// A raw protocol connection to the broker.
pub(crate) struct Raw {
    stream: rivulet_protocol::wire::Client<tokio::net::TcpStream>,
}

impl Raw {
    pub(crate) async fn connect(bs: &str) -> Raw {
        let stream = rivulet_protocol::wire::connect(bs)
            .await
            .unwrap()
            .with_client_id(Some("raw-member".to_string()))
            .with_timeout(TIMEOUT);
        Raw { stream }
    }

    pub(crate) async fn send(
        &mut self,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        // The group's coordinator is this (only) broker.
        self.stream.round_trip(1, &req).await.unwrap()
    }

    pub(crate) async fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        topics: Option<&[&str]>,
        regex: Option<&str>,
    ) -> ConsumerGroupHeartbeatResponse {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(if epoch == 0 { 10_000 } else { -1 })
            .with_subscribed_topic_names(topics.map(|ts| {
                ts.iter()
                    .map(|t| TopicName(StrBytes::from_string(t.to_string())))
                    .collect()
            }))
            .with_subscribed_topic_regex(regex.map(|r| StrBytes::from_string(r.into())))
            .with_topic_partitions((epoch == 0).then(Vec::new));
        self.send(req).await
    }

    pub(crate) async fn describe(
        &mut self,
        group: &str,
    ) -> consumer_group_describe_response::DescribedGroup {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
        // v0: the test client's response bounds know v0 only.
        let mut r: ConsumerGroupDescribeResponse = self.stream.round_trip(0, &req).await.unwrap();
        r.groups.remove(0)
    }
}

//! One Kafka request on a fresh connection, for the APIs and versions
//! librdkafka does not speak, through `rivulet_protocol`'s wire client.

use kafka_protocol::protocol::Request;
use rivulet_protocol::wire;

use crate::TIMEOUT;

/// Send `req` at `version` to `bootstrap` (one address) and decode its
/// response. Panics unless the response matches the request and decodes to
/// the last byte, or if none comes within [`TIMEOUT`].
pub async fn raw_request<R: Request>(bootstrap: &str, version: i16, req: &R) -> R::Response {
    let mut client = wire::connect(bootstrap)
        .await
        .unwrap_or_else(|e| panic!("connect to {bootstrap}: {e}"))
        .with_client_id(Some("rivulet-raw".to_string()))
        .with_timeout(TIMEOUT);
    client
        .round_trip(version, req)
        .await
        .unwrap_or_else(|e| panic!("round trip to {bootstrap}: {e}"))
}

/// The id of `topic` as Metadata (v12) reports it to a client; panics if
/// the topic is unknown.
pub async fn topic_id(bootstrap: &str, topic: &str) -> uuid::Uuid {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let resp = raw_request(bootstrap, 12, &req).await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0, "Metadata of {topic}");
    t.topic_id
}

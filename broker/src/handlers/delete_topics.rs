//! DeleteTopics: each topic, named (v1–v5) or by name or topic id (v6), is
//! removed by the controller. The answer waits, up to `timeout_ms`, until
//! the topic is gone from this node's metadata image and every local log of
//! it is deleted from the data dir, so a client hearing success can recreate
//! the name at once. A deletion that outlives the timeout still completes
//! and is answered REQUEST_TIMED_OUT, as Kafka does.
//!
//! Unknown names are UNKNOWN_TOPIC_OR_PARTITION, unknown ids
//! UNKNOWN_TOPIC_ID; naming a topic twice, or giving both a name and an id
//! in one entry, is INVALID_REQUEST (Kafka's `ControllerApis` rules).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError as E;
use rivulet_controller::{ControllerRequest, MetadataImage};
use rivulet_storage::TopicPartition;
use uuid::Uuid;

use super::{sb, tn};
use crate::context::BrokerContext;
use crate::errors;

/// Longest a request waits for deletions to complete.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// One entry of the request as the client addressed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Name(String),
    Id(Uuid),
    /// A v6 entry with both a name and an id.
    Both(String, Uuid),
}

/// A topic the controller accepted to delete.
struct Pending {
    index: usize,
    name: String,
    id: Uuid,
    partitions: Vec<i32>,
}

pub async fn handle(
    b: &BrokerContext,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wait = Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_WAIT);
    let targets: Vec<Target> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| match t.name {
                Some(n) if !t.topic_id.is_nil() => Target::Both(n.to_string(), t.topic_id),
                Some(n) => Target::Name(n.to_string()),
                None => Target::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| Target::Name(n.to_string()))
            .collect()
    };
    let mut seen: HashMap<&Target, usize> = HashMap::new();
    for t in &targets {
        *seen.entry(t).or_default() += 1;
    }

    let image = b.image();
    let mut results = Vec::with_capacity(targets.len());
    let mut pending = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let mut result = DeletableTopicResult::default();
        let found = match target {
            Target::Name(n) => {
                result = result.with_name(Some(tn(n.clone())));
                image
                    .topic(n)
                    .ok_or((E::UnknownTopicOrPartition.code(), None))
            }
            Target::Id(id) => {
                // Null until the id resolves to a name.
                result = result.with_name(None).with_topic_id(*id);
                image
                    .topics
                    .get(id)
                    .map(|t| &**t)
                    .ok_or((E::UnknownTopicId.code(), None))
            }
            Target::Both(n, id) => {
                result = result.with_name(Some(tn(n.clone()))).with_topic_id(*id);
                Err((
                    E::InvalidRequest.code(),
                    Some("give a topic name or a topic id, not both"),
                ))
            }
        };
        let found = if seen.get(target).is_some_and(|n| *n > 1) {
            Err((
                E::InvalidRequest.code(),
                Some("the topic appears more than once in the request"),
            ))
        } else {
            found
        };
        let topic = match found {
            Ok(t) => t,
            Err((code, message)) => {
                results.push(
                    result
                        .with_error_code(code)
                        .with_error_message(message.map(sb)),
                );
                continue;
            }
        };
        let result = result
            .with_name(Some(tn(topic.name.clone())))
            .with_topic_id(topic.id);
        let resp = b
            .controller_request(ControllerRequest::DeleteTopic {
                name: topic.name.clone(),
            })
            .await;
        let (code, message) = errors::controller_response(&resp);
        if code == errors::NONE {
            pending.push(Pending {
                index,
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.keys().copied().collect(),
            });
        }
        results.push(
            result
                .with_error_code(code)
                .with_error_message(message.map(sb)),
        );
    }

    if !pending.is_empty() {
        let done = b
            .wait_until(wait, |image| pending.iter().all(|p| deleted(b, image, p)))
            .await;
        if !done {
            let image = b.image();
            for p in pending.iter().filter(|p| !deleted(b, &image, p)) {
                if let Some(r) = results.get_mut(p.index) {
                    r.error_code = E::RequestTimedOut.code();
                    r.error_message = Some(sb(format!(
                        "deletion of topic '{}' is still under way",
                        p.name
                    )));
                }
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(results)
}

/// Whether `p` is gone from `image` and no log of it is left on this node.
fn deleted(b: &BrokerContext, image: &MetadataImage, p: &Pending) -> bool {
    if image.topics.contains_key(&p.id) {
        return false;
    }
    let logs = b.replicas.log_manager();
    let mut on_disk: Vec<String> = Vec::new();
    for pid in &p.partitions {
        let tp = TopicPartition::new(p.name.clone(), *pid);
        match b.replicas.get(&tp) {
            Some(part) if part.topic_id == p.id => return false,
            // A new topic of the same name already lives here.
            Some(_) => {}
            None if logs.get(&tp).is_some() => return false,
            None => on_disk.push(tp.dir_name()),
        }
    }
    // One listing of the data dir for all partitions of the topic.
    on_disk.is_empty() || {
        let present = log_dirs(logs.data_dir());
        on_disk.iter().all(|d| !present.contains(d))
    }
}

/// Partition directories in `data_dir`, counting one renamed for deletion
/// (`<dir>.<millis>-delete`, which the log manager removes last) under its
/// original name.
fn log_dirs(data_dir: &Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|name| {
            let doomed = name
                .strip_suffix("-delete")
                .and_then(|rest| rest.rsplit_once('.'))
                .filter(|(_, millis)| {
                    !millis.is_empty() && millis.bytes().all(|c| c.is_ascii_digit())
                })
                .map(|(dir, _)| dir.to_string());
            doomed.unwrap_or(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_dir_being_removed_still_counts_as_present() {
        let dir = tempfile::tempdir().unwrap();
        assert!(log_dirs(dir.path()).is_empty());
        std::fs::create_dir(dir.path().join("t-0")).unwrap();
        std::fs::create_dir(dir.path().join("t-1.1700000000000-delete")).unwrap();
        std::fs::create_dir(dir.path().join("a.b-2")).unwrap();
        std::fs::create_dir(dir.path().join("odd.x-delete-0")).unwrap();
        let expected: HashSet<String> = ["t-0", "t-1", "a.b-2", "odd.x-delete-0"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(log_dirs(dir.path()), expected);
    }
}

//! The hostile frames: huge claims, full frames, amplifiers.

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use rivulet_protocol::request_bounds::sample::sample;
use rivulet_protocol::wire;

use super::*;

// ---- frames ----
//
// Every frame here is whole, size prefix included, as `wire` encodes it;
// a frame's size is what its prefix states (its length less 4 bytes).

const CLIENT_ID: &str = "hostile";

/// A request frame for `body` at `version`.
pub(crate) fn frame_of<R: Request>(version: i16, body: &R) -> Bytes {
    wire::encode_request(body, version, 1, Some(CLIENT_ID))
        .expect("encode a request")
        .freeze()
}

/// A request frame: the header for `key`/`version`, then `body` as given.
pub(crate) fn raw_frame(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    wire::encode_raw_request(key, version, 1, Some(CLIENT_ID), body)
        .expect("encode a request header")
        .freeze()
}

/// The size a frame's prefix states.
fn size_of(frame: &[u8]) -> usize {
    frame.len().saturating_sub(4)
}

/// The frame `build(pad)` grown by its padding to a size of `target`
/// bytes (or the nearest below it a varint boundary allows); `None` if it
/// cannot fit.
pub(crate) fn padded(target: usize, build: &dyn Fn(usize) -> Bytes) -> Option<Bytes> {
    let base = build(0);
    if size_of(&base) > target {
        return None;
    }
    let mut best = base;
    // A tag (2 bytes), a size varint (1–5) and the padding itself.
    let mut pad = target.saturating_sub(size_of(&best) + 7);
    for _ in 0..6 {
        if pad == 0 {
            break;
        }
        let f = build(pad);
        let size = size_of(&f);
        match size.cmp(&target) {
            std::cmp::Ordering::Equal => return Some(f),
            std::cmp::Ordering::Less => {
                pad += target - size;
                best = f;
            }
            std::cmp::Ordering::Greater => pad = pad.saturating_sub(size - target),
        }
    }
    Some(best)
}

/// Whether the broker's own decoding path takes `frame`; its estimate.
pub(crate) fn accepted(key: ApiKey, version: i16, frame: &Bytes) -> Option<usize> {
    rivulet_protocol::request::decode(frame.slice(4..), key, version)
        .ok()
        .map(|d| d.bounds.decoded_estimate)
}

/// One amplification frame: the most elements a `target`-byte frame can
/// carry and still be accepted.
pub(crate) struct Amplifier {
    pub(crate) label: String,
    pub(crate) elements: usize,
    pub(crate) estimate: usize,
    pub(crate) frame: Bytes,
}

pub(crate) fn amplifier(
    label: &str,
    key: ApiKey,
    version: i16,
    target: usize,
    build: &dyn Fn(usize, usize) -> Bytes,
) -> Option<Amplifier> {
    let at = |n: usize| padded(target, &|pad| build(n, pad));
    let ok = |n: usize| at(n).and_then(|f| accepted(key, version, &f).map(|e| (f, e)));
    let (mut lo, mut hi) = (0usize, target);
    ok(0)?;
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (frame, estimate) = ok(lo)?;
    Some(Amplifier {
        label: format!("{label} x{lo}"),
        elements: lo,
        estimate,
        frame,
    })
}

pub(crate) fn pad_fields(pad: usize) -> std::collections::BTreeMap<i32, Bytes> {
    let mut m = std::collections::BTreeMap::new();
    if pad > 0 {
        m.insert(PAD_TAG, Bytes::from(vec![0x5a; pad]));
    }
    m
}

/// A request frame of `n` elements and `pad` bytes of padding.
type Build = Box<dyn Fn(usize, usize) -> Bytes>;

/// The four amplification frames at `target` bytes.
pub(crate) fn amplifiers(target: usize, delete_topics_version: i16) -> Vec<Amplifier> {
    let empty = || TopicName(StrBytes::from_static_str(""));
    let v = delete_topics_version;
    let kinds: [(&str, ApiKey, i16, Build); 4] = [
        (
            "DeleteTopics",
            ApiKey::DeleteTopics,
            v,
            Box::new(move |n, pad| {
                let r = DeleteTopicsRequest::default()
                    .with_topic_names(vec![empty(); n])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(v, &r)
            }),
        ),
        (
            "Metadata",
            ApiKey::Metadata,
            9,
            Box::new(move |n, pad| {
                let t = MetadataRequestTopic::default().with_name(Some(empty()));
                let r = MetadataRequest::default()
                    .with_topics(Some(vec![t; n]))
                    .with_allow_auto_topic_creation(false)
                    .with_include_topic_authorized_operations(true)
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(9, &r)
            }),
        ),
        (
            "OffsetFetch",
            ApiKey::OffsetFetch,
            8,
            Box::new(move |n, pad| {
                let g = OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("")))
                    .with_topics(None);
                let r = OffsetFetchRequest::default()
                    .with_groups(vec![g; n])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(8, &r)
            }),
        ),
        (
            "Produce",
            ApiKey::Produce,
            9,
            Box::new(move |n, pad| {
                let parts = (0..n)
                    .map(|i| PartitionProduceData::default().with_index(i as i32))
                    .collect();
                let t = TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_data(parts);
                let r = ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![t])
                    .with_unknown_tagged_fields(pad_fields(pad));
                frame_of(9, &r)
            }),
        ),
    ];
    kinds
        .iter()
        .filter_map(|(label, key, version, build)| {
            let a = amplifier(
                &format!("{label} v{version}"),
                *key,
                *version,
                target,
                build,
            );
            if a.is_none() {
                eprintln!("hostile: no {label} v{version} frame of {target} bytes is accepted");
            }
            a
        })
        .collect()
}

/// Frames of exactly `limit` bytes: a Produce v9 whose records are
/// garbage, a Metadata v12 that is nearly all one unknown tagged field.
pub(crate) fn full_frames(limit: usize) -> [Bytes; 2] {
    let produce = padded(limit, &|pad| {
        let records = Bytes::from(vec![0x5a; pad]);
        let p = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records));
        let t = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![p]);
        let r = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![t]);
        frame_of(9, &r)
    })
    .expect("a produce frame fits");
    let metadata = padded(limit, &|pad| {
        let r = MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_unknown_tagged_fields(pad_fields(pad));
        frame_of(12, &r)
    })
    .expect("a metadata frame fits");
    [produce, metadata]
}

/// Every advertised (key, version) with each prefix of its sample body set
/// to its largest value; and the (key, version)s the table had no sample of.
pub(crate) fn huge_claims(advertised: &[(i16, i16, i16)]) -> (Vec<Bytes>, Vec<String>) {
    let (mut frames, mut missing) = (Vec::new(), Vec::new());
    for &(key, min, max) in advertised {
        let Ok(api) = ApiKey::try_from(key) else {
            missing.push(format!("key {key}"));
            continue;
        };
        for version in min..=max {
            let mut bodies = BTreeSet::new();
            for tagged in [false, true] {
                let Some(s) = sample(key, version, tagged) else {
                    missing.push(format!("{api:?} v{version}"));
                    break;
                };
                for slot in &s.slots {
                    bodies.insert(s.with_max(*slot));
                }
            }
            frames.extend(bodies.iter().map(|b| raw_frame(api, version, b)));
        }
    }
    (frames, missing)
}

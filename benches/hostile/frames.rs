//! The hostile frames: huge claims, full frames, amplifiers.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, GroupId, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rivulet_protocol::request_bounds::sample::sample;

use super::*;

// ---- frames ----

/// A request header for `key`/`version`, encoded.
pub(crate) fn header(key: ApiKey, version: i16) -> BytesMut {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("hostile")))
        .encode(&mut out, key.request_header_version(version))
        .expect("encode header");
    out
}

/// Header and body of a request, without the size prefix.
pub(crate) fn frame_of<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Vec<u8> {
    let mut out = header(key, version);
    body.encode(&mut out, version).expect("encode body");
    out.to_vec()
}

/// A header followed by `body` as given.
pub(crate) fn raw_frame(key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = header(key, version);
    out.put_slice(body);
    out.to_vec()
}

/// `frame` behind its size prefix.
pub(crate) fn sized(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_i32(frame.len() as i32);
    out.put_slice(frame);
    out.freeze()
}

/// The frame `build(pad)` grown by its padding to `target` bytes (or the
/// nearest below it a varint boundary allows); `None` if it cannot fit.
pub(crate) fn padded(target: usize, build: &dyn Fn(usize) -> Vec<u8>) -> Option<Vec<u8>> {
    let base = build(0);
    if base.len() > target {
        return None;
    }
    let mut best = base;
    // A tag (2 bytes), a size varint (1–5) and the padding itself.
    let mut pad = target.saturating_sub(best.len() + 7);
    for _ in 0..6 {
        if pad == 0 {
            break;
        }
        let f = build(pad);
        match f.len().cmp(&target) {
            std::cmp::Ordering::Equal => return Some(f),
            std::cmp::Ordering::Less => {
                pad += target - f.len();
                best = f;
            }
            std::cmp::Ordering::Greater => pad = pad.saturating_sub(f.len() - target),
        }
    }
    Some(best)
}

/// Whether the broker's own decoding path takes `frame`; its estimate.
pub(crate) fn accepted(key: ApiKey, version: i16, frame: &[u8]) -> Option<usize> {
    rivulet_protocol::request::decode(Bytes::copy_from_slice(frame), key, version)
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
    build: &dyn Fn(usize, usize) -> Vec<u8>,
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
        frame: sized(&frame),
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
type Build = Box<dyn Fn(usize, usize) -> Vec<u8>>;

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
                frame_of(ApiKey::DeleteTopics, v, &r)
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
                frame_of(ApiKey::Metadata, 9, &r)
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
                frame_of(ApiKey::OffsetFetch, 8, &r)
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
                frame_of(ApiKey::Produce, 9, &r)
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
        frame_of(ApiKey::Produce, 9, &r)
    })
    .expect("a produce frame fits");
    let metadata = padded(limit, &|pad| {
        let r = MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_unknown_tagged_fields(pad_fields(pad));
        frame_of(ApiKey::Metadata, 12, &r)
    })
    .expect("a metadata frame fits");
    [sized(&produce), sized(&metadata)]
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
            frames.extend(bodies.iter().map(|b| sized(&raw_frame(api, version, b))));
        }
    }
    (frames, missing)
}

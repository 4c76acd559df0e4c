use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use super::sample::{sample, SlotKind};
use super::*;
use crate::request::{decode, RequestError};

/// A frame (without size prefix): header for `key`/`version`, then `body`.
pub(crate) fn frame(key: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let f = crate::wire::encode_raw_request(key, version, 7, Some("test"), body).unwrap();
    f[4..].to_vec()
}

/// Every (key, version) of the table that `kafka-protocol` has a codec for.
fn decodable_versions() -> Vec<(ApiKey, i16)> {
    let mut out = Vec::new();
    for m in schema::REQUESTS {
        let Ok(key) = ApiKey::try_from(m.api_key) else {
            continue;
        };
        let range = key.valid_versions();
        for v in m.valid.0..=m.valid.1.min(range.max) {
            if v >= range.min {
                out.push((key, v));
            }
        }
    }
    out
}

#[test]
fn samples_decode_and_the_walk_reads_what_the_decoder_reads() {
    let mut checked = 0;
    for (key, v) in decodable_versions() {
        for tagged in [false, true] {
            let s = sample(key as i16, v, tagged).expect("in the table");
            match decode(Bytes::from(frame(key, v, &s.body)), key, v) {
                Ok(d) => {
                    assert_eq!(d.bounds.consumed, s.body.len(), "{key:?} v{v}");
                    checked += 1;
                }
                // Semantic refusals of the codec are fine (e.g. a tagged
                // field it decodes with a stricter type); a layout mismatch
                // or a bounds refusal of a well-formed sample is not.
                Err(RequestError::Decode { message, .. }) => {
                    panic!("{key:?} v{v} (tagged: {tagged}) sample does not decode: {message}")
                }
                Err(e) => panic!("{key:?} v{v} (tagged: {tagged}): {e}"),
            }
        }
    }
    assert!(checked > 500, "only {checked} versions checked");
}

#[test]
fn the_largest_count_in_any_slot_is_refused_before_decoding() {
    for (key, v) in decodable_versions() {
        let s = sample(key as i16, v, true).expect("in the table");
        for slot in &s.slots {
            let body = s.with_max(*slot);
            let err = check_body(key as i16, v, &body).expect_err("a claim past the frame");
            assert!(
                matches!(err, BoundsError::Claim { .. }),
                "{key:?} v{v} {slot:?}: {err}"
            );
            // And through the full decode path: refused, no allocation.
            let r = decode(Bytes::from(frame(key, v, &body)), key, v);
            assert!(
                matches!(r, Err(RequestError::Bounds { .. })),
                "{key:?} v{v} {slot:?}"
            );
        }
    }
}

#[test]
fn metadata_v1_topic_count_of_2_pow_31_is_refused() {
    // The 22-byte frame of the hardening issue: Metadata v1 claiming
    // 2^31−1 topics.
    let mut body = Vec::new();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let err = check_body(3, 1, &body).unwrap_err();
    assert_eq!(
        err,
        BoundsError::Claim {
            what: "array count",
            at: 0,
            claimed: i32::MAX as u64,
            need: i32::MAX as u64 * 2,
            remaining: 0,
        }
    );
}

#[test]
fn nested_counts_are_bounded_by_the_bytes_after_them() {
    // Fetch v4: one topic whose partition array claims 2 partitions but
    // carries bytes for one (each FetchPartition is 16 bytes in v4).
    let s = sample(1, 4, false).unwrap();
    let partitions = s
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::ArrayCount)
        .nth(1)
        .copied()
        .unwrap();
    let mut body = s.body.clone();
    body[partitions.at..partitions.at + 4].copy_from_slice(&2i32.to_be_bytes());
    assert!(matches!(
        check_body(1, 4, &body),
        Err(BoundsError::Claim { need: 32, .. })
    ));
}

#[test]
fn null_arrays_and_strings_pass_the_walk() {
    // Metadata v1 with a null topic array (all topics) is valid.
    let body = (-1i32).to_be_bytes();
    assert_eq!(check_body(3, 1, &body).unwrap().consumed, 4);
    // Compact null (0) in v12, then the three booleans... v12 has two.
    let body = [0u8, 1, 0, 0];
    assert_eq!(check_body(3, 12, &body).unwrap().consumed, 4);
}

#[test]
fn negative_lengths_other_than_null_are_refused() {
    let body = (-2i32).to_be_bytes();
    assert!(matches!(
        check_body(3, 1, &body),
        Err(BoundsError::BadLength { value: -2, .. })
    ));
}

#[test]
fn many_one_byte_elements_exceed_the_amplification_limit() {
    // DeleteTopics v4 (flexible): a compact array of 200,000 empty topic
    // names, one byte each on the wire, ~32 bytes each decoded.
    let n: u32 = 200_000;
    let mut body = Vec::new();
    sample::push_uvarint(&mut body, n + 1);
    body.extend(std::iter::repeat_n(1u8, n as usize));
    body.extend_from_slice(&0i32.to_be_bytes()); // timeout
    body.push(0); // tagged fields
    assert!(matches!(
        check_body(20, 4, &body),
        Err(BoundsError::Amplification { .. })
    ));
}

#[test]
fn unknown_tagged_fields_are_skipped_by_their_size() {
    // Metadata v12: null topics, flags, then one unknown tag (99) of 3 bytes.
    let body = [0u8, 1, 0, 1, 99, 3, 0xaa, 0xbb, 0xcc];
    assert_eq!(check_body(3, 12, &body).unwrap().consumed, body.len());
    // The same claiming 200 bytes is refused.
    let body = [0u8, 1, 0, 1, 99, 0xc8, 0x01, 0xaa];
    assert!(matches!(
        check_body(3, 12, &body),
        Err(BoundsError::Claim {
            what: "tagged field size",
            ..
        })
    ));
}

#[test]
fn header_client_id_longer_than_the_frame_is_refused() {
    let mut f = frame(ApiKey::Metadata, 1, &(-1i32).to_be_bytes());
    f[8..10].copy_from_slice(&i16::MAX.to_be_bytes());
    assert!(matches!(
        check_header(&f, 1),
        Err(BoundsError::Claim { .. })
    ));
}

#[test]
fn fetch_responses_walk_as_the_decoder_reads_and_huge_counts_are_refused() {
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;
    for v in 4..=12 {
        for tagged in [false, true] {
            let s = sample::sample_response(1, v, tagged).unwrap();
            let mut buf = Bytes::from(s.body.clone());
            FetchResponse::decode(&mut buf, v).unwrap();
            assert!(buf.is_empty(), "v{v}: the decoder left bytes");
            assert_eq!(
                check_response_body(1, v, &s.body).unwrap().consumed,
                s.body.len()
            );
            for slot in &s.slots {
                assert!(
                    matches!(
                        check_response_body(1, v, &s.with_max(*slot)),
                        Err(BoundsError::Claim { .. })
                    ),
                    "v{v} {slot:?}"
                );
            }
        }
    }
    // Response header v1: correlation id, then tagged fields.
    assert_eq!(check_response_header(&[0, 0, 0, 1, 0], 1).unwrap(), 5);
    assert!(check_response_header(&[0, 0, 0, 1, 1, 0, 0xff, 0x01], 1).is_err());
}

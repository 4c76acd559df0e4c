//! The partitions a consumer-group member was assigned, read from the
//! opaque assignment bytes DescribeGroups returns for groups of protocol
//! type `consumer` (Kafka's `ConsumerProtocolAssignment`, versions 0-3).
//!
//! Layout: `i16` version, then an array (`i32` count, -1 for null) of
//! `(string topic, array of i32 partition)` (strings: `i16` length), then
//! the assignor's user data, which is not needed here and not read.
//!
//! The bytes come from the network and were written by whichever client
//! led the group, so the reader is lenient where that is safe and strict
//! where it is not: versions above 3 are read as 3 (Kafka's
//! `ConsumerProtocol` does the same; newer versions only add fields at the
//! end), trailing bytes are ignored, and anything that does not parse is
//! `None` — never a panic. Counts are not trusted for allocation (an
//! array claiming 2^31 entries in an 8-byte buffer fails when the bytes run
//! out), which is why this is not `kafka_protocol`'s decoder: its `Array`
//! reserves the claimed count up front.

use std::collections::{BTreeMap, BTreeSet};

/// Assigned partitions by topic.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// The partitions in `bytes`, or `None` when they are not a consumer
/// protocol assignment.
pub fn decode_assignment(bytes: &[u8]) -> Option<Assignment> {
    let mut r = Reader(bytes);
    if r.i16()? < 0 {
        return None;
    }
    let mut out = Assignment::new();
    for _ in 0..r.count()? {
        let topic = r.string()?;
        let partitions = out.entry(topic).or_default();
        for _ in 0..r.count()? {
            let p = r.i32()?;
            if p < 0 {
                return None;
            }
            partitions.insert(p);
        }
    }
    Some(out)
}

/// `topic(0,1),other(2)` as kafka-consumer-groups.sh prints an assignment;
/// `-` when it is empty.
pub fn format_assignment(a: &Assignment) -> String {
    let parts: Vec<String> = a
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| {
            let ids: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}({})", ids.join(","))
        })
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// Number of partitions in an assignment.
pub fn partition_count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Big-endian reads that fail instead of panicking when bytes run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }

    /// An array length; a null array (-1) is empty.
    fn count(&mut self) -> Option<i32> {
        match self.i32()? {
            -1 => Some(0),
            n if n >= 0 => Some(n),
            _ => None,
        }
    }

    /// A non-null string; invalid UTF-8 is replaced, not refused, since it
    /// is only printed.
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        let bytes = self.0.get(..len)?;
        self.0 = self.0.get(len..)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    /// Bytes as Kafka clients write them: the version, then the message.
    fn encode(version: i16, topics: &[(String, Vec<i32>)], user_data: Option<&[u8]>) -> Vec<u8> {
        let message = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            )
            .with_user_data(user_data.map(bytes::Bytes::copy_from_slice));
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        message.encode(&mut buf, version.min(3)).unwrap();
        buf.to_vec()
    }

    fn assignment(kv: &[(&str, &[i32])]) -> Assignment {
        kv.iter()
            .map(|(t, ps)| (t.to_string(), ps.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn reads_every_version_and_ignores_user_data() {
        let topics = vec![
            ("orders".to_string(), vec![2, 0]),
            ("audit".to_string(), vec![1]),
        ];
        let want = assignment(&[("audit", &[1]), ("orders", &[0, 2])]);
        for version in 0..=3 {
            for user_data in [None, Some(&b"sticky-state"[..])] {
                let bytes = encode(version, &topics, user_data);
                assert_eq!(decode_assignment(&bytes), Some(want.clone()), "v{version}");
            }
        }
        assert_eq!(format_assignment(&want), "audit(1),orders(0,2)");
        assert_eq!(partition_count(&want), 3);
    }

    #[test]
    fn newer_versions_and_trailing_bytes_are_read_leniently() {
        let mut bytes = encode(3, &[("t".to_string(), vec![0])], None);
        bytes[1] = 9;
        bytes.extend_from_slice(b"a future field");
        assert_eq!(decode_assignment(&bytes), Some(assignment(&[("t", &[0])])));
    }

    #[test]
    fn an_empty_assignment_prints_as_a_dash() {
        let empty = decode_assignment(&encode(0, &[], None)).unwrap();
        assert!(empty.is_empty());
        assert_eq!(format_assignment(&empty), "-");
        // A null topic array (-1) is no topics.
        assert_eq!(
            decode_assignment(&[0, 1, 0xff, 0xff, 0xff, 0xff]),
            Some(Assignment::new())
        );
    }

    #[test]
    fn malformed_bytes_are_none() {
        let good = encode(1, &[("topic".to_string(), vec![0, 1])], None);
        for cut in 0..good.len() - 4 {
            // Everything up to the last partition is needed; the user data
            // (4 bytes of null length) is not.
            assert_eq!(decode_assignment(&good[..cut]), None, "cut at {cut}");
        }
        for bad in [
            &[][..],
            &[0xff, 0xff, 0, 0, 0, 0][..],
            // 2^31-1 topics claimed in a few bytes.
            &[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, b't'][..],
            // Negative count other than -1.
            &[0, 0, 0xff, 0xff, 0xff, 0xfe][..],
            // Null topic name.
            &[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0][..],
            // Negative partition.
            &[
                0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
            ][..],
        ] {
            assert_eq!(decode_assignment(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_assignment(&bytes);
        }

        #[test]
        fn what_kafka_protocol_encodes_decodes_to_the_same_partitions(
            version in 0i16..=3,
            topics in proptest::collection::vec(
                ("[a-z._-]{1,12}", proptest::collection::vec(0i32..1000, 0..6)),
                0..5,
            ),
            user_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        ) {
            let bytes = encode(version, &topics, user_data.as_deref());
            let mut want = Assignment::new();
            for (t, ps) in &topics {
                want.entry(t.clone()).or_default().extend(ps.iter().copied());
            }
            prop_assert_eq!(decode_assignment(&bytes), Some(want));
        }
    }
}

//! Server-side assignors of the consumer group protocol (KIP-848): from the
//! members' subscriptions, the subscribed topics' partition counts and the
//! previous target assignment to the next target assignment.
//!
//! - `uniform` (the default, Kafka's `UniformAssignor`): every partition of
//!   every subscribed topic goes to exactly one member subscribed to its
//!   topic; members end up balanced (their partition counts differ by at
//!   most one among members that could take each other's partitions), and
//!   among balanced assignments the one that keeps most of the previous
//!   target is chosen greedily: members keep what they had, unowned
//!   partitions go to the least loaded eligible member, then partitions move
//!   from the most to the least loaded member one at a time.
//! - `range` (Kafka's `RangeAssignor`): per topic, the partitions are cut
//!   into contiguous ranges over the topic's subscribers sorted by member id
//!   (the first `partitions % members` get one more), so members subscribed
//!   to co-partitioned topics get the same partition numbers of each.
//!
//! Both are pure and deterministic: the same input gives the same output.

use std::collections::{BTreeMap, BTreeSet};

use super::Partitions;

/// The assignors this coordinator offers, the first being the default.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// One member as the assignor sees it.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    /// Topics the member is subscribed to (names, regex matches resolved).
    pub subscribed: BTreeSet<String>,
    /// The member's previous target assignment (for stickiness).
    pub previous: Partitions,
}

/// Compute the target assignment with the named assignor (`uniform` for an
/// unknown name: names are validated when a member subscribes).
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn empty_result(members: &BTreeMap<String, MemberSpec>) -> BTreeMap<String, Partitions> {
    members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect()
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

/// Balanced, then sticky.
pub fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    let mut out = empty_result(members);
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    // 1. Keep previous partitions that are still valid and not taken yet.
    for (id, spec) in members {
        for (topic, parts) in &spec.previous {
            if !spec.subscribed.contains(topic) {
                continue;
            }
            let Some(&n) = topics.get(topic) else {
                continue;
            };
            for &p in parts {
                if p < 0 || p >= n || owner.contains_key(&(topic.clone(), p)) {
                    continue;
                }
                owner.insert((topic.clone(), p), id.clone());
                if let Some(m) = out.get_mut(id) {
                    m.entry(topic.clone()).or_default().insert(p);
                }
            }
        }
    }
    // 2. Every unowned partition to the least loaded subscribed member.
    let mut loads: BTreeMap<String, usize> =
        out.iter().map(|(k, v)| (k.clone(), count(v))).collect();
    for (topic, &n) in topics {
        let eligible: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.subscribed.contains(topic))
            .map(|(k, _)| k)
            .collect();
        if eligible.is_empty() {
            continue;
        }
        for p in 0..n.max(0) {
            if owner.contains_key(&(topic.clone(), p)) {
                continue;
            }
            let Some(to) = eligible
                .iter()
                .min_by_key(|m| (loads.get(m.as_str()).copied().unwrap_or(0), m.as_str()))
                .map(|m| (*m).clone())
            else {
                continue;
            };
            owner.insert((topic.clone(), p), to.clone());
            *loads.entry(to.clone()).or_default() += 1;
            if let Some(m) = out.get_mut(&to) {
                m.entry(topic.clone()).or_default().insert(p);
            }
        }
    }
    // 3. Balance: move one partition at a time from a most loaded member to
    // a member with at least two fewer that is subscribed to its topic. Each
    // move lowers the sum of squared loads, so the loop ends; the bound is a
    // guard.
    let total: usize = loads.values().sum();
    for _ in 0..=total.saturating_mul(members.len().max(1)) {
        let Some(mv) = find_move(members, &out, &loads) else {
            break;
        };
        let (from, to, topic, p) = mv;
        if let Some(m) = out.get_mut(&from) {
            if let Some(set) = m.get_mut(&topic) {
                set.remove(&p);
                if set.is_empty() {
                    m.remove(&topic);
                }
            }
        }
        if let Some(m) = out.get_mut(&to) {
            m.entry(topic).or_default().insert(p);
        }
        if let Some(l) = loads.get_mut(&from) {
            *l = l.saturating_sub(1);
        }
        *loads.entry(to).or_default() += 1;
    }
    out
}

/// A partition to move from a member to one with at least two fewer
/// partitions: the most loaded donor first, the least loaded receiver,
/// the donor's highest partition (keeps low partitions where they were).
fn find_move(
    members: &BTreeMap<String, MemberSpec>,
    out: &BTreeMap<String, Partitions>,
    loads: &BTreeMap<String, usize>,
) -> Option<(String, String, String, i32)> {
    let mut donors: Vec<(&String, usize)> = loads.iter().map(|(k, v)| (k, *v)).collect();
    donors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut receivers = donors.clone();
    receivers.reverse();
    for (donor, dl) in &donors {
        for (recv, rl) in &receivers {
            if rl + 1 >= *dl {
                break;
            }
            let Some(spec) = members.get(*recv) else {
                continue;
            };
            let Some(parts) = out.get(*donor) else {
                continue;
            };
            for (topic, set) in parts.iter().rev() {
                if !spec.subscribed.contains(topic) {
                    continue;
                }
                if let Some(&p) = set.iter().next_back() {
                    return Some(((*donor).clone(), (*recv).clone(), topic.clone(), p));
                }
            }
        }
    }
    None
}

/// Contiguous ranges per topic over its subscribers sorted by member id.
pub fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    let mut out = empty_result(members);
    for (topic, &n) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.subscribed.contains(topic))
            .map(|(k, _)| k)
            .collect();
        if subs.is_empty() || n <= 0 {
            continue;
        }
        let n = n as usize;
        let per = n / subs.len();
        let extra = n % subs.len();
        let mut next = 0usize;
        for (i, m) in subs.iter().enumerate() {
            let take = per + usize::from(i < extra);
            if take == 0 {
                continue;
            }
            let set: BTreeSet<i32> = (next..next + take)
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
            next += take;
            if let Some(a) = out.get_mut(*m) {
                a.insert(topic.clone(), set);
            }
        }
    }
    out
}

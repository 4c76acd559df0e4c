//! The replication rules, as pure functions over plain state: the leader's
//! view of its followers, the high watermark, ISR shrink/expand and the
//! KIP-595 divergence check. Time is passed in (milliseconds on a monotonic
//! clock); nothing here does I/O, so it is unit-tested without sockets.
//! [`super::PartitionReplica`] applies them to one partition's events.

use std::collections::BTreeMap;

/// What the leader knows of one follower of a partition, from its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch.
    pub log_end_offset: i64,
    /// When the follower was last caught up: it fetched at (or past) the
    /// leader's log end, or at (or past) the log end the leader had at its
    /// previous fetch (then as of that previous fetch).
    pub last_caught_up_ms: u64,
    /// The leader's log end at this follower's previous fetch, and when.
    pub last_fetch_leader_leo: i64,
    pub last_fetch_ms: u64,
}

/// The followers of a partition as seen by its leader in one leader epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followers {
    pub leader_epoch: i32,
    pub progress: BTreeMap<i32, FollowerProgress>,
}

impl Followers {
    /// Start tracking `followers` for a new leader epoch. As in Kafka, each
    /// starts out caught up "now" with an unknown (0) log end, so an ISR
    /// member gets a full `replica.lag.time.max.ms` to fetch; none can join
    /// the ISR before it has fetched.
    pub fn new(leader_epoch: i32, followers: impl IntoIterator<Item = i32>, now_ms: u64) -> Self {
        Followers {
            leader_epoch,
            progress: followers
                .into_iter()
                .map(|id| {
                    (
                        id,
                        FollowerProgress {
                            log_end_offset: 0,
                            last_caught_up_ms: now_ms,
                            last_fetch_leader_leo: -1,
                            last_fetch_ms: now_ms,
                        },
                    )
                })
                .collect(),
        }
    }

    /// A fetch from `follower` at `fetch_offset` while the leader's log ends
    /// at `leader_leo`. As Kafka's `Replica.updateFetchState`: a follower
    /// that reached the leader's log end is caught up now; one that reached
    /// the log end the leader had at its previous fetch was caught up as of
    /// that fetch — under steady writes a follower is always a little
    /// behind the current end, yet it keeps up.
    pub fn record_fetch(&mut self, follower: i32, fetch_offset: i64, leader_leo: i64, now_ms: u64) {
        let p = self.progress.entry(follower).or_insert(FollowerProgress {
            log_end_offset: 0,
            last_caught_up_ms: 0,
            last_fetch_leader_leo: -1,
            last_fetch_ms: 0,
        });
        p.log_end_offset = fetch_offset;
        if fetch_offset >= leader_leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if p.last_fetch_leader_leo >= 0 && fetch_offset >= p.last_fetch_leader_leo {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.last_fetch_leader_leo = leader_leo;
        p.last_fetch_ms = now_ms;
    }
}

/// The high watermark the ISR allows: the smallest log end offset over the
/// ISR, the leader's own included. A member the leader has not heard from
/// counts as 0 (it holds the watermark back until it fetches).
pub fn high_watermark(leader: i32, leader_leo: i64, isr: &[i32], followers: &Followers) -> i64 {
    isr.iter()
        .filter(|r| **r != leader)
        .map(|r| {
            followers
                .progress
                .get(r)
                .map_or(0, |p| p.log_end_offset.min(leader_leo))
        })
        .fold(leader_leo, i64::min)
}

/// A partition as its leader sees it, for [`isr_update`].
#[derive(Debug, Clone, Copy)]
pub struct LeaderView<'a> {
    pub leader: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
    pub high_watermark: i64,
    /// Where the current leader epoch starts in the leader's log.
    pub epoch_start_offset: i64,
}

/// The ISR the leader should ask the controller for, if it should change:
/// followers that have not caught up for `lag_max_ms` leave (Kafka's
/// `replica.lag.time.max.ms`); replicas outside the ISR that have reached
/// the high watermark and the start of the current leader epoch join.
pub fn isr_update(
    view: &LeaderView<'_>,
    followers: &Followers,
    lag_max_ms: u64,
    now_ms: u64,
) -> Option<Vec<i32>> {
    let LeaderView {
        leader,
        replicas,
        isr,
        high_watermark,
        epoch_start_offset,
    } = *view;
    let lagging = |r: i32| {
        followers
            .progress
            .get(&r)
            .is_none_or(|p| now_ms.saturating_sub(p.last_caught_up_ms) > lag_max_ms)
    };
    let caught_up = |r: i32| {
        followers.progress.get(&r).is_some_and(|p| {
            p.last_fetch_leader_leo >= 0
                && p.log_end_offset >= high_watermark
                && p.log_end_offset >= epoch_start_offset
                && now_ms.saturating_sub(p.last_caught_up_ms) <= lag_max_ms
        })
    };
    let new: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| {
            *r == leader || (isr.contains(r) && !lagging(*r)) || (!isr.contains(r) && caught_up(*r))
        })
        .collect();
    let mut old_sorted = isr.to_vec();
    old_sorted.sort_unstable();
    let mut new_sorted = new.clone();
    new_sorted.sort_unstable();
    (old_sorted != new_sorted).then_some(new)
}

/// KIP-595: does a follower whose last fetched batch had `last_fetched_epoch`
/// and whose log ends at `fetch_offset` diverge from the leader? `leader_end`
/// is the leader's `end_offset_for_epoch(last_fetched_epoch)`. Returns the
/// `(epoch, end_offset)` to send back; the follower truncates to
/// `min(end_offset, its log end)`.
pub fn diverging_epoch(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    leader_end: (i32, i64),
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = leader_end;
    (epoch != last_fetched_epoch || end_offset < fetch_offset).then_some((epoch, end_offset))
}

/// Where a follower truncates to after the leader reported a divergence:
/// `leader` is the leader's `(epoch, end_offset)` from `diverging_epoch`,
/// `own` the follower's own `end_offset_for_epoch(epoch)`. As Kafka's
/// fetcher (KIP-279): when the follower has that epoch too, the smaller of
/// the two ends; when it does not, the end of its largest epoch below it,
/// and the next fetch asks again with that epoch — the leader's end alone
/// would keep the follower's records of an epoch the leader never had. A
/// negative end (no common epoch) keeps nothing past the log start.
pub fn truncation_offset(
    leader: (i32, i64),
    own: (i32, i64),
    log_start_offset: i64,
    log_end_offset: i64,
) -> i64 {
    let ((leader_epoch, leader_end), (own_epoch, own_end)) = (leader, own);
    let to = if leader_end < 0 || own_end < 0 {
        log_start_offset
    } else if own_epoch == leader_epoch {
        own_end.min(leader_end)
    } else {
        own_end
    };
    to.min(log_end_offset).max(log_start_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followers(entries: &[(i32, i64, u64)]) -> Followers {
        Followers {
            leader_epoch: 1,
            progress: entries
                .iter()
                .map(|(id, leo, t)| {
                    (
                        *id,
                        FollowerProgress {
                            log_end_offset: *leo,
                            last_caught_up_ms: *t,
                            last_fetch_leader_leo: *leo,
                            last_fetch_ms: *t,
                        },
                    )
                })
                .collect(),
        }
    }

    fn view<'a>(replicas: &'a [i32], isr: &'a [i32], hw: i64, start: i64) -> LeaderView<'a> {
        LeaderView {
            leader: 1,
            replicas,
            isr,
            high_watermark: hw,
            epoch_start_offset: start,
        }
    }

    #[test]
    fn high_watermark_is_the_smallest_log_end_in_the_isr() {
        let f = followers(&[(2, 7, 0), (3, 4, 0)]);
        assert_eq!(high_watermark(1, 10, &[1, 2, 3], &f), 4);
        assert_eq!(high_watermark(1, 10, &[1, 2], &f), 7);
        assert_eq!(high_watermark(1, 10, &[1], &f), 10);
    }

    #[test]
    fn unknown_isr_member_holds_the_high_watermark_at_zero() {
        let f = followers(&[(2, 7, 0)]);
        assert_eq!(high_watermark(1, 10, &[1, 2, 3], &f), 0);
    }

    #[test]
    fn follower_ahead_of_leader_counts_as_leader_log_end() {
        let f = followers(&[(2, 12, 0)]);
        assert_eq!(high_watermark(1, 10, &[1, 2], &f), 10);
    }

    #[test]
    fn lagging_follower_leaves_the_isr() {
        let f = followers(&[(2, 10, 1_000), (3, 5, 100)]);
        assert_eq!(
            isr_update(&view(&[1, 2, 3], &[1, 2, 3], 5, 0), &f, 500, 1_200),
            Some(vec![1, 2])
        );
        // Within the lag time nothing changes.
        assert_eq!(
            isr_update(&view(&[1, 2, 3], &[1, 2, 3], 5, 0), &f, 500, 550),
            None
        );
    }

    #[test]
    fn caught_up_follower_rejoins_the_isr() {
        let f = followers(&[(2, 10, 1_000), (3, 10, 1_000)]);
        assert_eq!(
            isr_update(&view(&[1, 2, 3], &[1, 2], 10, 0), &f, 500, 1_100),
            Some(vec![1, 2, 3])
        );
        // Below the high watermark, or the epoch start, it stays out.
        let behind = followers(&[(2, 10, 1_000), (3, 9, 1_000)]);
        assert_eq!(
            isr_update(&view(&[1, 2, 3], &[1, 2], 10, 0), &behind, 500, 1_100),
            None
        );
        assert_eq!(
            isr_update(&view(&[1, 2, 3], &[1, 2], 8, 11), &f, 500, 1_100),
            None
        );
    }

    #[test]
    fn record_fetch_refreshes_caught_up_time_only_at_leader_log_end() {
        let mut f = Followers::new(3, [2], 0);
        f.record_fetch(2, 5, 10, 100);
        assert_eq!(f.progress[&2].last_caught_up_ms, 0);
        assert_eq!(f.progress[&2].log_end_offset, 5);
        f.record_fetch(2, 10, 10, 200);
        assert_eq!(f.progress[&2].last_caught_up_ms, 200);
    }

    #[test]
    fn follower_that_never_fetched_does_not_join_the_isr() {
        let f = Followers::new(3, [2], 0);
        let v = view(&[1, 2], &[1], 0, 0);
        assert_eq!(isr_update(&v, &f, 1_000, 0), None);
    }

    #[test]
    fn follower_keeping_up_under_steady_writes_stays_caught_up() {
        // Each fetch reaches the end the leader had at the previous one, but
        // the leader has appended meanwhile: never at the current end.
        let mut f = Followers::new(3, [2], 0);
        f.record_fetch(2, 0, 10, 1_000);
        assert_eq!(f.progress[&2].last_caught_up_ms, 0);
        f.record_fetch(2, 10, 20, 2_000);
        assert_eq!(f.progress[&2].last_caught_up_ms, 1_000);
        f.record_fetch(2, 20, 30, 3_000);
        assert_eq!(f.progress[&2].last_caught_up_ms, 2_000);
        let v = view(&[1, 2], &[1, 2], 20, 0);
        assert_eq!(isr_update(&v, &f, 1_500, 3_000), None, "kept in the ISR");
        // Falling behind that end: no longer refreshed, dropped later.
        f.record_fetch(2, 25, 40, 4_000);
        assert_eq!(f.progress[&2].last_caught_up_ms, 2_000);
        assert_eq!(isr_update(&v, &f, 1_500, 4_000), Some(vec![1]));
    }

    #[test]
    fn divergence_follows_kip_595() {
        // Same epoch, follower within it: no divergence.
        assert_eq!(diverging_epoch(3, 10, (3, 12)), None);
        // Follower has more of epoch 3 than the leader: truncate to 12.
        assert_eq!(diverging_epoch(3, 15, (3, 12)), Some((3, 12)));
        // Leader never had epoch 3: its largest epoch below ends at 8.
        assert_eq!(diverging_epoch(3, 15, (2, 8)), Some((2, 8)));
        // A follower that fetched nothing yet cannot diverge.
        assert_eq!(diverging_epoch(-1, 0, (-1, -1)), None);
    }

    #[test]
    fn truncation_stays_within_the_log() {
        assert_eq!(truncation_offset((3, 12), (3, 15), 0, 15), 12);
        assert_eq!(truncation_offset((3, 20), (3, 15), 0, 15), 15);
        assert_eq!(truncation_offset((-1, -1), (-1, -1), 3, 15), 3);
        assert_eq!(truncation_offset((3, 1), (3, 15), 3, 15), 3);
    }

    #[test]
    fn follower_truncates_to_its_own_end_of_the_leaders_epoch() {
        // Follower: epoch 0 at [0, 4), its own epoch 1 at [4, 8). Leader:
        // epoch 0 at [0, 6), epoch 2 from 6 — it never had epoch 1, so it
        // answers epoch 0 ending at 6. Our epoch 0 ends at 4: records from 4
        // on are epoch 1 and must go, though the leader's end is past them.
        assert_eq!(truncation_offset((0, 6), (0, 4), 0, 8), 4);
        // Follower with only epoch 1 at [0, 4) (UNDEFINED for epoch 0, or
        // Kafka's (0, first start) since KAFKA-7415): keep nothing.
        assert_eq!(truncation_offset((0, 4), (-1, -1), 0, 4), 0);
        assert_eq!(truncation_offset((0, 4), (0, 0), 0, 4), 0);
        // Follower without the leader's epoch 2: back to the end of its
        // epoch 1 below it, and ask again from there.
        assert_eq!(truncation_offset((2, 9), (1, 7), 0, 10), 7);
    }

    /// A deterministic simulation: a leader and two followers replicate
    /// under a seeded random schedule of appends and fetches; the high
    /// watermark never passes what every ISR member holds and never moves
    /// back.
    #[test]
    fn simulated_schedules_keep_high_watermark_safe() {
        for seed in 0..200u64 {
            let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut next = || {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) as u32
            };
            let mut leader_leo = 0i64;
            let mut follower_leo = [0i64; 2];
            let mut f = Followers::new(1, [2, 3], 0);
            let mut hw = 0i64;
            for now in 0..300u64 {
                match next() % 3 {
                    0 => leader_leo += i64::from(next() % 4),
                    _ => {
                        let i = (next() % 2) as usize;
                        // The follower fetches at its log end and gets some
                        // of what the leader has.
                        f.record_fetch(i as i32 + 2, follower_leo[i], leader_leo, now);
                        let got = i64::from(next() % 3);
                        follower_leo[i] = (follower_leo[i] + got).min(leader_leo);
                    }
                }
                let new_hw = high_watermark(1, leader_leo, &[1, 2, 3], &f).max(hw);
                assert!(new_hw >= hw, "seed {seed}: high watermark moved back");
                assert!(
                    new_hw <= follower_leo[0].min(follower_leo[1]).min(leader_leo),
                    "seed {seed}: high watermark {new_hw} past a replica"
                );
                hw = new_hw;
            }
        }
    }
}

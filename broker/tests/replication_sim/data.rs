//! The data path of the driver: produce and acks=all waiters, fsyncs,
//! follower fetches on both sides, ISR checks, and the network bag.

use super::*;

impl Sim {
    /// A client produces (acks=all or acks=1) to a node that believes it
    /// leads.
    pub(super) fn produce(&mut self) {
        let leaders: Vec<i32> = self
            .ids()
            .into_iter()
            .filter(|id| self.node(*id).leads())
            .collect();
        let Some(id) = self.rng.pick(&leaders) else {
            return;
        };
        let state = self.node(id).state.clone().expect("leader state");
        // acks=1 promises nothing past the leader's log, but its records
        // are committed like any others once the HW passes them.
        let acks_all = self.rng.chance(70);
        if acks_all && state.isr.len() < state.min_isr {
            self.stats.produce_rejected += 1;
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.observe_leader(state.leader_epoch, id, "an append");
        let n = self.node_mut(id);
        let offset = n.leo();
        n.log.push(Entry {
            epoch: state.leader_epoch,
            value,
        });
        n.cache
            .assign(state.leader_epoch, offset)
            .expect("epoch cache");
        if n.hw_isr() == [id] {
            n.hw = offset + 1;
        } else {
            n.advance_hw();
        }
        if acks_all {
            n.waiters.push(Waiter {
                offset,
                value,
                leader_epoch: state.leader_epoch,
                fsync: None,
                deadline_ms: None,
            });
        }
        self.note(format!(
            "node {id} appends {value} at {offset} in epoch {} (acks={})",
            state.leader_epoch,
            if acks_all { "all" } else { "1" }
        ));
    }

    /// `ReplicaManager::append` after the append: `wait_durable`, then
    /// `wait_for_high_watermark`, each re-checked whenever the parked task
    /// happens to run.
    pub(super) fn run_waiters(&mut self, all: bool) {
        let now = self.now_ms;
        for id in self.ids() {
            if !self.node(id).alive {
                continue;
            }
            let waiters = std::mem::take(&mut self.node_mut(id).waiters);
            let mut keep = Vec::new();
            for mut w in waiters {
                if !all && !self.rng.chance(70) {
                    keep.push(w);
                    continue;
                }
                let tick = self.tick;
                let fsync_time = self.fsync_time();
                let n = self.node_mut(id);
                let upto = w.offset + 1;
                if w.deadline_ms.is_none() {
                    // `FlushTracker::wait_durable`: fsync (taking its time)
                    // until the tracker's flushed offset covers ours.
                    match w.fsync {
                        Some((done, _, _)) if tick < done => {
                            keep.push(w);
                            continue;
                        }
                        Some((_, covers, truncations)) => {
                            // `FlushTracker::flush_done`: a flush that spans
                            // a truncation vouches for nothing.
                            if truncations == n.truncations {
                                n.flushed = n.flushed.max(covers);
                                n.disk = n.disk.max(covers);
                            }
                            w.fsync = None;
                        }
                        None => {}
                    }
                    if n.flushed < upto {
                        w.fsync = Some((tick + fsync_time, n.leo(), n.truncations));
                        keep.push(w);
                        continue;
                    }
                    w.deadline_ms = Some(now + ACK_TIMEOUT_MS);
                }
                let state = n.state.clone().expect("state");
                if state.leader != id || state.leader_epoch != w.leader_epoch {
                    self.note(format!("node {id}: {} NOT_LEADER_OR_FOLLOWER", w.value));
                } else if n.hw >= upto {
                    if state.isr.len() < state.min_isr {
                        self.note(format!(
                            "node {id}: {} NOT_ENOUGH_REPLICAS_AFTER_APPEND",
                            w.value
                        ));
                    } else {
                        self.ack(id, w.offset, w.value);
                    }
                } else if w.deadline_ms.is_some_and(|d| now >= d) {
                    self.note(format!("node {id}: {} timed out", w.value));
                } else {
                    keep.push(w);
                }
            }
            self.node_mut(id).waiters = keep;
        }
    }

    /// Ticks one leader fsync takes: mostly none, sometimes a slow disk.
    pub(super) fn fsync_time(&mut self) -> u64 {
        let (instant, short) = if self.cfg.storm { (50, 70) } else { (75, 94) };
        match self.rng.below(100) {
            r if r < instant => 0,
            r if r < short => 1 + self.rng.below(5),
            _ => 10 + self.rng.below(70),
        }
    }

    pub(super) fn ack(&mut self, id: i32, offset: i64, value: u64) {
        self.note(format!("node {id} acks {value} at {offset}"));
        if let Some(v) = self.acked.insert(offset, value) {
            self.fail(format!(
                "offset {offset} acknowledged twice: {v} and then {value}"
            ));
        }
        self.stats.acked += 1;
    }

    /// The fetcher of `id` (`run_fetchers` + `fetch_from` + `build_request`):
    /// one fetcher per leader, one request in flight each.
    pub(super) fn fetch(&mut self, id: i32) {
        let n = self.node(id);
        if !n.alive {
            return;
        }
        let Some(state) = n.state.clone() else { return };
        let leader = state.leader;
        let follows = leader >= 0 && leader != id && state.replicas.contains(&id);
        let up = self.up(id, leader);
        // A fetcher started now gets a new generation: responses to an
        // earlier fetcher of the same leader are dropped.
        let generation = self.next_generation;
        self.next_generation += 1;
        let n = self.node_mut(id);
        n.fetchers.retain(|l, _| follows && *l == leader);
        if !follows {
            return;
        }
        let fetcher = n.fetchers.entry(leader).or_insert(Fetcher {
            generation,
            in_flight: false,
        });
        if fetcher.in_flight || !up {
            return;
        }
        fetcher.in_flight = true;
        let msg = Msg::FetchRequest {
            follower: id,
            leader,
            incarnation: n.incarnation,
            generation: fetcher.generation,
            fetch_offset: n.leo(),
            last_fetched_epoch: n.cache.latest_epoch().unwrap_or(-1),
            leader_epoch: state.leader_epoch,
        };
        self.network.push(msg);
    }

    /// The leader's side of a follower fetch (`handlers/fetch.rs`
    /// `read_partition` with `record_follower_fetch`).
    pub(super) fn serve_fetch(
        &mut self,
        leader: i32,
        follower: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        leader_epoch: i32,
    ) -> FetchBody {
        let now = self.now_ms;
        let max = 1 + self.rng.below(MAX_FETCH_RECORDS);
        let n = self.node_mut(leader);
        let Some(state) = n.state.clone() else {
            return FetchBody::Error;
        };
        if state.leader != leader {
            return FetchBody::Error;
        }
        if leader_epoch >= 0 && leader_epoch != state.leader_epoch {
            return FetchBody::Error;
        }
        if !state.replicas.contains(&follower) || follower == leader {
            return FetchBody::Error;
        }
        let leo = n.leo();
        let end = n.cache.end_offset_for(last_fetched_epoch, leo);
        if let Some((epoch, end_offset)) =
            replication::diverging_epoch(last_fetched_epoch, fetch_offset, end)
        {
            let end_offset = if end_offset < 0 { 0 } else { end_offset };
            return FetchBody::Diverging { epoch, end_offset };
        }
        n.followers.record_fetch(follower, fetch_offset, leo, now);
        n.advance_hw();
        if fetch_offset > leo {
            return FetchBody::Error;
        }
        let upto = (fetch_offset + max as i64).min(leo);
        FetchBody::Records {
            base: fetch_offset,
            entries: n.log[fetch_offset as usize..upto as usize].to_vec(),
            hw: n.hw,
        }
    }

    /// The follower's `apply_response`.
    pub(super) fn apply_fetch(&mut self, id: i32, leader: i32, leader_epoch: i32, body: FetchBody) {
        let n = self.node_mut(id);
        let following = n.state.as_ref().is_some_and(|s| {
            s.leader == leader && s.leader_epoch == leader_epoch && s.leader != id
        });
        if !following {
            return;
        }
        match body {
            FetchBody::Error => {}
            FetchBody::Diverging { epoch, end_offset } => {
                let leo = n.leo();
                let own = n.cache.end_offset_for(epoch, leo);
                let to = replication::truncation_offset((epoch, end_offset), own, 0, leo);
                n.truncate_to(to);
                self.stats.truncations += 1;
                self.note(format!(
                    "node {id} diverges from {leader} (epoch {epoch} ends at {end_offset}): \
                     log end {leo} truncated to {to}"
                ));
            }
            FetchBody::Records { base, entries, hw } => {
                if !entries.is_empty() {
                    if base < n.leo() {
                        // NonMonotonicOffset: the append fails.
                        return;
                    }
                    if base > n.leo() {
                        let leo = n.leo();
                        self.fail(format!(
                            "node {id} would append at {base} past its log end {leo}"
                        ));
                    }
                    for e in entries {
                        let offset = n.leo();
                        n.log.push(e);
                        n.cache.assign(e.epoch, offset).expect("epoch cache");
                    }
                    // flush.policy on-ack: `wait_durable(log end)` before
                    // the next fetch; it fsyncs only if the tracker is behind.
                    if n.flushed < n.leo() {
                        n.flushed = n.leo();
                        n.disk = n.leo();
                    }
                }
                if hw >= 0 {
                    let hw = hw.min(n.leo());
                    if hw > n.hw {
                        n.hw = hw;
                    }
                }
            }
        }
    }

    /// `maintain_isr` with `ReplicaManager::isr_changes`.
    pub(super) fn isr_check(&mut self, id: i32) {
        let now = self.now_ms;
        let up = self.up(id, CONTROLLER);
        let maximal = !self.as_is.last_seen_isr;
        let n = self.node_mut(id);
        if !n.leads() || n.isr_in_flight || (maximal && n.pending_isr.is_some()) {
            return;
        }
        let state = n.state.clone().expect("state");
        if state.replicas.len() < 2 || n.followers.leader_epoch != state.leader_epoch {
            return;
        }
        let epoch_start = n.cache.entries().last().map_or(0, |e| e.start_offset);
        let view = LeaderView {
            leader: id,
            replicas: &state.replicas,
            isr: &state.isr,
            high_watermark: n.hw,
            epoch_start_offset: epoch_start,
        };
        let Some(new_isr) = replication::isr_update(&view, &n.followers, LAG_MAX_MS, now) else {
            return;
        };
        if !up {
            return;
        }
        n.isr_in_flight = true;
        if maximal {
            n.pending_isr = Some((state.leader_epoch, state.partition_epoch, new_isr.clone()));
        }
        let msg = Msg::AlterPartition {
            leader: id,
            incarnation: n.incarnation,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr,
        };
        self.network.push(msg);
    }

    /// A message that never arrives: the sender's request times out.
    pub(super) fn lost(&mut self, msg: Msg) {
        match msg {
            Msg::FetchRequest {
                follower,
                incarnation,
                generation,
                ..
            }
            | Msg::FetchResponse {
                follower,
                incarnation,
                generation,
                ..
            } => {
                let n = self.node_mut(follower);
                if n.incarnation == incarnation {
                    for f in n.fetchers.values_mut() {
                        if f.generation == generation {
                            f.in_flight = false;
                        }
                    }
                }
            }
            Msg::AlterPartition {
                leader,
                incarnation,
                ..
            } => {
                let n = self.node_mut(leader);
                if n.incarnation == incarnation {
                    n.isr_in_flight = false;
                    n.pending_isr = None;
                }
            }
        }
    }

    pub(super) fn deliver(&mut self, index: usize) {
        let msg = self.network.remove(index);
        let (from, to) = msg.route();
        let dropped = !self.up(from, to) || (!self.settling && self.rng.chance(2));
        let dest_down = to != CONTROLLER && !self.node(to).alive;
        if dropped || dest_down {
            self.lost(msg);
            return;
        }
        match msg {
            Msg::FetchRequest {
                follower,
                leader,
                incarnation,
                generation,
                fetch_offset,
                last_fetched_epoch,
                leader_epoch,
            } => {
                let body = self.serve_fetch(
                    leader,
                    follower,
                    fetch_offset,
                    last_fetched_epoch,
                    leader_epoch,
                );
                self.network.push(Msg::FetchResponse {
                    follower,
                    leader,
                    incarnation,
                    generation,
                    leader_epoch,
                    body,
                });
            }
            Msg::FetchResponse {
                follower,
                leader,
                incarnation,
                generation,
                leader_epoch,
                body,
            } => {
                let n = self.node_mut(follower);
                if n.incarnation != incarnation {
                    return;
                }
                let Some(f) = n
                    .fetchers
                    .get_mut(&leader)
                    .filter(|f| f.generation == generation)
                else {
                    return;
                };
                f.in_flight = false;
                self.apply_fetch(follower, leader, leader_epoch, body);
            }
            Msg::AlterPartition {
                leader,
                incarnation,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let n = self.node_mut(leader);
                let ours = n.incarnation == incarnation;
                if ours {
                    n.isr_in_flight = false;
                }
                let accepted = self.alter_partition(leader, leader_epoch, partition_epoch, new_isr);
                if ours && !accepted {
                    self.node_mut(leader).pending_isr = None;
                }
            }
        }
    }
}

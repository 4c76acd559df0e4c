//! The data path of the driver: produce, fsyncs and parked acks=all
//! produces, follower fetches on both sides, ISR ticks, the network bag,
//! and the executor of the state machine's actions.

use rivulet_broker::replication::{FetchedPartition, FollowerFetchAnswer};

use super::*;

/// `ReplicaFetch`'s error for a partition the leader cannot serve
/// (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, OFFSET_OUT_OF_RANGE…: the
/// follower only backs off).
const FETCH_ERROR: i16 = 6;

impl Sim {
    /// Carry out the actions of node `id`'s state machine, in order, as
    /// `Partition::execute` does; `fetched` is the response whose records
    /// [`Action::AppendFetched`] appends.
    pub(super) fn execute(
        &mut self,
        id: i32,
        actions: Vec<Action>,
        fetched: Option<(i64, &[Entry])>,
    ) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let n = self.node_mut(id);
            match action {
                Action::AssignEpochStart {
                    leader_epoch,
                    start_offset,
                } => {
                    n.cache
                        .assign(leader_epoch, start_offset)
                        .expect("epoch cache");
                }
                Action::HighWatermark(hw) => {
                    // `PartitionLog::set_high_watermark` clamps.
                    n.hw = hw.clamp(0, n.leo());
                }
                Action::CompleteAck { id: ack, result } => {
                    let Some(p) = n.parked.remove(&ack) else {
                        self.fail(format!(
                            "node {id}: answer for unknown parked produce {ack}"
                        ));
                    };
                    match result {
                        Ok(()) => self.ack(id, p.offset, p.value),
                        Err(e) => self.note(format!("node {id}: {} {e:?}", p.value)),
                    }
                }
                Action::SendAlterPartition(request) => {
                    let incarnation = n.incarnation;
                    if self.up(id, CONTROLLER) {
                        self.network.push(Msg::AlterPartition {
                            leader: id,
                            incarnation,
                            request,
                        });
                    } else {
                        // `controller_request` fails: no answer.
                        let more = self
                            .node_mut(id)
                            .event(|r, log| {
                                r.on_alter_partition_answer(
                                    &request,
                                    AlterPartitionAnswer::Unknown,
                                    log,
                                )
                            })
                            .unwrap_or_default();
                        queue.extend(more);
                    }
                }
                Action::TruncateTo(to) => {
                    let leo = n.leo();
                    n.truncate_to(to);
                    self.stats.truncations += 1;
                    self.note(format!(
                        "node {id} diverges: log end {leo} truncated to {to}"
                    ));
                }
                Action::TruncateFullyAndStartAt(offset) => {
                    self.fail(format!(
                        "node {id} told to restart its log at {offset}: logs start at 0 here"
                    ));
                }
                Action::AppendFetched => {
                    let Some((base, entries)) = fetched else {
                        self.fail(format!("node {id}: append without a fetch response"));
                    };
                    if !entries.is_empty() {
                        if base < n.leo() {
                            // NonMonotonicOffset: the append fails, and with
                            // it the rest of the response.
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
                            n.log.push(*e);
                            n.cache.assign(e.epoch, offset).expect("epoch cache");
                        }
                        // flush.policy on-ack: `wait_durable(log end)` before
                        // the next fetch; it fsyncs only if the tracker is
                        // behind.
                        if n.flushed < n.leo() {
                            n.flushed = n.leo();
                            n.disk = n.leo();
                        }
                    }
                    let more = n.event(|r, log| r.on_append(log)).unwrap_or_default();
                    queue.extend(more);
                }
            }
        }
    }

    /// A client produces (acks=all or acks=1) to a node that believes it
    /// leads (`ReplicaManager::append`).
    pub(super) fn produce(&mut self) {
        let leaders: Vec<i32> = self
            .ids()
            .into_iter()
            .filter(|id| self.node(*id).leads())
            .collect();
        let Some(id) = self.rng.pick(&leaders) else {
            return;
        };
        // acks=1 promises nothing past the leader's log, but its records
        // are committed like any others once the HW passes them.
        let acks_all = self.rng.chance(70);
        let acks = if acks_all { -1 } else { 1 };
        let checked = self
            .node_mut(id)
            .event(|r, _| r.check_produce(acks))
            .expect("leader state");
        let leader_epoch = match checked {
            Ok(epoch) => epoch,
            Err(_) => {
                self.stats.produce_rejected += 1;
                return;
            }
        };
        let value = self.next_value;
        self.next_value += 1;
        self.observe_leader(leader_epoch, id, "an append");
        let n = self.node_mut(id);
        let offset = n.leo();
        // `PartitionLog::append_as_leader`.
        n.log.push(Entry {
            epoch: leader_epoch,
            value,
        });
        n.cache.assign(leader_epoch, offset).expect("epoch cache");
        let actions = n.event(|r, log| r.on_append(log)).unwrap_or_default();
        if acks_all {
            n.syncing.push(Syncing {
                offset,
                value,
                leader_epoch,
                fsync: None,
            });
        }
        self.note(format!(
            "node {id} appends {value} at {offset} in epoch {leader_epoch} (acks={})",
            if acks_all { "all" } else { "1" }
        ));
        self.execute(id, actions, None);
    }

    /// `ReplicaManager::append` after the append, each time the parked
    /// task happens to run: `wait_durable`, then park in the state
    /// machine (which answers through [`Action::CompleteAck`]) until the
    /// produce's timeout.
    pub(super) fn run_waiters(&mut self, all: bool) {
        let now = self.now_ms;
        for id in self.ids() {
            if !self.node(id).alive {
                continue;
            }
            let syncing = std::mem::take(&mut self.node_mut(id).syncing);
            let mut keep = Vec::new();
            for mut w in syncing {
                if !all && !self.rng.chance(70) {
                    keep.push(w);
                    continue;
                }
                let tick = self.tick;
                let fsync_time = self.fsync_time();
                let n = self.node_mut(id);
                let upto = w.offset + 1;
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
                let ack = n.next_ack;
                n.next_ack += 1;
                n.parked.insert(
                    ack,
                    Parked {
                        offset: w.offset,
                        value: w.value,
                        deadline_ms: now + ACK_TIMEOUT_MS,
                    },
                );
                let actions = n
                    .event(|r, log| r.wait_for_ack(ack, upto, w.leader_epoch, log))
                    .expect("a live node with produces has a state machine");
                self.execute(id, actions, None);
            }
            self.node_mut(id).syncing.append(&mut keep);
            // The produce's timeout.
            let expired: Vec<AckId> = self
                .node(id)
                .parked
                .iter()
                .filter(|(_, p)| now >= p.deadline_ms)
                .map(|(ack, _)| *ack)
                .collect();
            for ack in expired {
                let n = self.node_mut(id);
                n.event(|r, _| r.cancel_ack(ack));
                if let Some(p) = n.parked.remove(&ack) {
                    self.note(format!("node {id}: {} timed out", p.value));
                }
            }
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

    /// The fetcher of `id` (`run_fetchers` + `fetch_from` + `build_request`
    /// over `PartitionReplica::fetch_request`): one fetcher per leader, one
    /// request in flight each.
    pub(super) fn fetch(&mut self, id: i32) {
        if !self.node(id).alive {
            return;
        }
        let Some(following) = self.node_mut(id).event(|r, _| r.following()) else {
            return;
        };
        let up = following.is_some_and(|leader| self.up(id, leader));
        // A fetcher started now gets a new generation: responses to an
        // earlier fetcher of the same leader are dropped.
        let generation = self.next_generation;
        self.next_generation += 1;
        let n = self.node_mut(id);
        n.fetchers.retain(|l, _| following == Some(*l));
        let Some(leader) = following else {
            return;
        };
        let fetcher = n.fetchers.entry(leader).or_insert(Fetcher {
            generation,
            in_flight: false,
        });
        if fetcher.in_flight || !up {
            return;
        }
        fetcher.in_flight = true;
        let generation = fetcher.generation;
        let Some(Some(f)) = n.event(|r, log| r.fetch_request(log)) else {
            return;
        };
        let msg = Msg::FetchRequest {
            follower: id,
            leader,
            incarnation: n.incarnation,
            generation,
            fetch_offset: f.fetch_offset,
            last_fetched_epoch: f.last_fetched_epoch,
            leader_epoch: f.leader_epoch,
        };
        self.network.push(msg);
    }

    /// The leader's side of a follower fetch: `handlers/fetch.rs`
    /// `read_partition`'s checks, then `PartitionReplica::on_follower_fetch`,
    /// then the read.
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
        let Some(state) = n.state().cloned() else {
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
        let (answer, actions) = n
            .event(|r, log| {
                r.on_follower_fetch(follower, fetch_offset, None, last_fetched_epoch, log, now)
            })
            .expect("leader state");
        self.execute(leader, actions, None);
        if let FollowerFetchAnswer::Diverging { epoch, end_offset } = answer {
            return FetchBody::Diverging { epoch, end_offset };
        }
        let n = self.node(leader);
        let leo = n.leo();
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

    /// The follower's `apply_response`: `PartitionReplica::on_fetch_response`
    /// and its actions.
    pub(super) fn apply_fetch(&mut self, id: i32, leader: i32, leader_epoch: i32, body: FetchBody) {
        let mut response = FetchedPartition {
            leader,
            leader_epoch,
            error_code: 0,
            high_watermark: -1,
            log_start_offset: 0,
            diverging_epoch: None,
            has_records: false,
        };
        let mut fetched = None;
        match &body {
            FetchBody::Error => {
                response.error_code = FETCH_ERROR;
                response.log_start_offset = -1;
            }
            FetchBody::Diverging { epoch, end_offset } => {
                response.diverging_epoch = Some((*epoch, *end_offset));
            }
            FetchBody::Records { base, entries, hw } => {
                response.high_watermark = *hw;
                response.has_records = !entries.is_empty();
                fetched = Some((*base, entries.as_slice()));
            }
        }
        let applied = self
            .node_mut(id)
            .event(|r, log| r.on_fetch_response(&response, log));
        // `Err`: the fetcher backs off; nothing changes.
        if let Some(Ok(actions)) = applied {
            self.execute(id, actions, fetched);
        }
    }

    /// `maintain_isr` with `ReplicaManager::isr_changes`: tick the
    /// leader's state machine.
    pub(super) fn isr_check(&mut self, id: i32) {
        let now = self.now_ms;
        if !self.node(id).leads() {
            return;
        }
        let actions = self
            .node_mut(id)
            .event(|r, log| r.tick(now, LAG_MAX_MS, log))
            .unwrap_or_default();
        self.execute(id, actions, None);
    }

    /// Report the controller's `answer` to `request` to `leader`, if the
    /// process that sent it still runs.
    fn answer_alter(
        &mut self,
        leader: i32,
        incarnation: Uuid,
        request: &AlterPartition,
        answer: AlterPartitionAnswer,
    ) {
        let n = self.node_mut(leader);
        if !n.alive || n.incarnation != incarnation {
            return;
        }
        let actions = n
            .event(|r, log| r.on_alter_partition_answer(request, answer, log))
            .unwrap_or_default();
        self.execute(leader, actions, None);
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
                request,
            } => {
                self.answer_alter(leader, incarnation, &request, AlterPartitionAnswer::Unknown);
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
                request,
            } => {
                let answer = self.alter_partition(leader, &request);
                self.answer_alter(leader, incarnation, &request, answer);
            }
        }
    }
}

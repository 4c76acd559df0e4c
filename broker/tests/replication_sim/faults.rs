//! Faults and the schedule: crashes, power losses, restarts, controlled
//! shutdowns, network partitions, the random step and the final settling.

use super::*;

impl Sim {
    pub(super) fn crash(&mut self, id: i32, power_loss: bool) {
        let n = self.node_mut(id);
        n.alive = false;
        n.replica = None;
        n.hw = 0;
        n.registered = false;
        n.fetchers.clear();
        n.syncing.clear();
        n.parked.clear();
        if power_loss {
            let keep = n.disk as usize;
            n.log.truncate(keep);
        }
        self.stats.crashes += 1;
        self.note(format!(
            "node {id} {}",
            if power_loss { "loses power" } else { "crashes" }
        ));
    }

    /// A new process: `PartitionLog::open` (epoch cache reloaded from disk
    /// and cut at the log end, HW from the checkpoint); its state machine
    /// comes with the first image it follows — after registering, unless
    /// [`AsIs::serve_stale_image`].
    pub(super) fn restart(&mut self, id: i32) {
        let incarnation = self.rng.uuid();
        let n = self.node_mut(id);
        n.alive = true;
        n.incarnation = incarnation;
        n.cache = LeaderEpochCache::load(n.dir.path()).expect("epoch cache");
        let leo = n.leo();
        n.cache.truncate_from_end(leo).expect("epoch cache");
        n.flushed = leo;
        n.disk = leo;
        n.hw = n.hw_checkpoint.clamp(0, leo);
        self.note(format!("node {id} restarts"));
        if self.as_is.serve_stale_image {
            self.apply_local_image(id);
        }
    }

    /// `BrokerNode::shutdown`: BrokerShutdown to the controller, then a
    /// clean stop (everything flushed and checkpointed).
    pub(super) fn shutdown(&mut self, id: i32) {
        let incarnation = self.node(id).incarnation;
        if self.up(id, CONTROLLER)
            && self
                .ctl
                .image
                .brokers
                .get(&id)
                .is_some_and(|b| b.incarnation == incarnation)
        {
            self.ctl.heartbeats.forget(id);
            let records = logic::fence_broker(&self.ctl.image, id).expect("fence");
            self.commit(records);
        }
        let n = self.node_mut(id);
        n.flushed = n.leo();
        n.disk = n.leo();
        n.hw_checkpoint = n.hw;
        self.note(format!("node {id} shuts down"));
        self.crash(id, false);
    }

    pub(super) fn partition_network(&mut self) {
        let ids = self.ids();
        let Some(id) = self.rng.pick(&ids) else {
            return;
        };
        let others: Vec<i32> = ids.iter().copied().filter(|o| *o != id).collect();
        let kind = self.rng.below(4);
        let cut = |a: i32, b: i32, cuts: &mut BTreeSet<(i32, i32)>| {
            cuts.insert((a.min(b), a.max(b)));
        };
        match kind {
            0 => {
                cut(id, CONTROLLER, &mut self.cuts);
                for o in &others {
                    cut(id, *o, &mut self.cuts);
                }
                self.note(format!("node {id} isolated"));
            }
            1 => {
                cut(id, CONTROLLER, &mut self.cuts);
                self.note(format!("node {id} cut from the controller"));
            }
            2 => {
                for o in &others {
                    cut(id, *o, &mut self.cuts);
                }
                self.note(format!("node {id} cut from the other nodes"));
            }
            _ => {
                let o = self.rng.pick(&others).expect("other node");
                cut(id, o, &mut self.cuts);
                self.note(format!("link {id}-{o} cut"));
            }
        }
    }

    // ------------------------------------------------------------ driver

    pub(super) fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.step = step;
            self.tick += 1;
            self.now_ms += self.rng.below(60);
            self.random_step();
            for id in self.ids() {
                self.heartbeat(id);
            }
            self.expire_sessions();
            self.run_waiters(false);
            self.check();
        }
        self.settle();
    }

    pub(super) fn random_step(&mut self) {
        let ids = self.ids();
        let any = self.rng.pick(&ids).expect("nodes");
        let table = weights(self.cfg);
        let mut roll = self.rng.below(table.iter().map(|(_, w)| w).sum());
        let action = table
            .iter()
            .find(|(_, w)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map_or(Step::Deliver, |(a, _)| *a);
        match action {
            Step::Produce => self.produce(),
            Step::Fetch => {
                let followers: Vec<i32> = ids
                    .iter()
                    .copied()
                    .filter(|i| self.node(*i).alive && !self.node(*i).leads())
                    .collect();
                if let Some(id) = self.rng.pick(&followers) {
                    self.fetch(id);
                }
            }
            Step::Deliver => {
                for _ in 0..1 + self.rng.below(3) {
                    if !self.network.is_empty() {
                        let i = self.rng.below(self.network.len() as u64) as usize;
                        self.deliver(i);
                    }
                }
            }
            Step::MetaSync => {
                let all = self.rng.chance(80);
                self.meta_sync(any, all);
            }
            Step::IsrCheck => {
                let leaders: Vec<i32> = ids
                    .iter()
                    .copied()
                    .filter(|i| self.node(*i).leads())
                    .collect();
                if let Some(id) = self.rng.pick(&leaders) {
                    self.isr_check(id);
                }
            }
            Step::TimeJump => {
                // Mostly within replica.lag.time.max.ms, sometimes past it.
                let jump = if self.rng.chance(75) {
                    200 + self.rng.below(2_300)
                } else {
                    2_500 + self.rng.below(6_000)
                };
                self.now_ms += jump;
                self.note(format!("time +{jump} ms"));
            }
            Step::PreferredElection => {
                let records = logic::preferred_leader_elections(&self.ctl.image);
                self.commit(records);
            }
            Step::HwCheckpoint => {
                let n = self.node_mut(any);
                if n.alive {
                    n.hw_checkpoint = n.hw;
                }
            }
            Step::Crash => {
                if self.node(any).alive {
                    self.crash(any, false);
                }
            }
            Step::Restart => {
                let down: Vec<i32> = ids.into_iter().filter(|i| !self.node(*i).alive).collect();
                if let Some(id) = self.rng.pick(&down) {
                    self.restart(id);
                }
            }
            Step::PowerLoss => {
                if self.node(any).alive {
                    self.crash(any, true);
                }
            }
            Step::Shutdown => {
                if self.node(any).alive {
                    self.shutdown(any);
                }
            }
            Step::Partition => self.partition_network(),
            Step::Heal => {
                let cuts: Vec<(i32, i32)> = self.cuts.iter().copied().collect();
                if self.rng.chance(60) {
                    self.cuts.clear();
                    self.note("network healed");
                } else if let Some(c) = self.rng.pick(&cuts) {
                    self.cuts.remove(&c);
                    self.note(format!("link {}-{} healed", c.0, c.1));
                }
            }
        }
    }

    /// Heal everything, restart every node and run to quiescence; then
    /// every replica is in the ISR with the leader's log, which holds every
    /// acknowledged record.
    pub(super) fn settle(&mut self) {
        self.step = usize::MAX;
        self.settling = true;
        self.cuts.clear();
        self.note("settling: network healed, every node restarted");
        for id in self.ids() {
            if !self.node(id).alive {
                self.restart(id);
            }
        }
        for _ in 0..SETTLE_ROUNDS {
            self.tick += 1;
            self.now_ms += 100;
            for id in self.ids() {
                self.heartbeat(id);
            }
            self.expire_sessions();
            for id in self.ids() {
                self.meta_sync(id, true);
            }
            for id in self.ids() {
                self.fetch(id);
                self.isr_check(id);
            }
            while !self.network.is_empty() {
                self.deliver(0);
            }
            self.run_waiters(true);
            self.check();
            if self.unsettled().is_none() {
                break;
            }
        }
        if let Some(why) = self.unsettled() {
            self.fail(format!("no quiescence after healing everything: {why}"));
        }
        let leader = partition(&self.ctl.image).expect("partition").leader;
        let log = &self.node(leader).log;
        for (offset, value) in &self.acked {
            if log.get(*offset as usize).map(|e| e.value) != Some(*value) {
                self.fail(format!("acked {value} at {offset} missing after settling"));
            }
        }
    }

    /// What keeps the cluster from being settled, if anything.
    pub(super) fn unsettled(&self) -> Option<String> {
        let p = partition(&self.ctl.image)?;
        if p.leader == NO_LEADER {
            return Some("no leader".into());
        }
        if !self.network.is_empty() {
            return Some(format!("{} message(s) in flight", self.network.len()));
        }
        let mut isr = p.isr.clone();
        isr.sort_unstable();
        if isr != self.ids() {
            return Some(format!("ISR {:?}", p.isr));
        }
        let leader = self.node(p.leader);
        if leader.hw != leader.leo() {
            return Some(format!(
                "leader HW {} below its log end {}",
                leader.hw,
                leader.leo()
            ));
        }
        self.nodes.iter().find_map(|n| {
            if !n.alive {
                Some(format!("node {} down", n.id))
            } else if n.image.offset as usize != self.ctl.log.len() {
                Some(format!(
                    "node {} has metadata up to {} of {}",
                    n.id,
                    n.image.offset,
                    self.ctl.log.len()
                ))
            } else if n.log != leader.log {
                Some(format!("node {}'s log differs from the leader's", n.id))
            } else {
                None
            }
        })
    }

    // ------------------------------------------------------------ invariants
}

//! The controller and metadata side of the driver: commits, heartbeats and
//! session expiry, AlterPartition, image syncs and what a node does with a
//! new image.

use super::*;

impl Sim {
    /// Commit records to the metadata log and apply them to the
    /// controller's image, as the quorum's state machine does.
    pub(super) fn commit(&mut self, records: Vec<MetadataRecord>) {
        for r in records {
            let offset = self.ctl.log.len() as u64 + 1;
            if let Err(e) = self.ctl.image.apply(offset, &r) {
                self.fail(format!("controller cannot apply {r:?}: {e}"));
            }
            self.note(format!("commit {r:?}"));
            self.ctl.log.push(r);
        }
        let Some(p) = partition(&self.ctl.image).cloned() else {
            return;
        };
        if p.leader_epoch < self.controller_epoch {
            self.fail(format!(
                "controller leader epoch went back from {} to {}",
                self.controller_epoch, p.leader_epoch
            ));
        }
        if p.leader_epoch > self.controller_epoch {
            self.stats.leader_epochs += 1;
        }
        self.controller_epoch = p.leader_epoch;
        self.observe_leader(p.leader_epoch, p.leader, "controller image");
    }

    pub(super) fn observe_leader(&mut self, epoch: i32, leader: i32, who: &str) {
        if leader == NO_LEADER {
            return;
        }
        match self.leader_of_epoch.get(&epoch) {
            Some(l) if *l != leader => self.fail(format!(
                "two leaders in epoch {epoch}: {l} and {leader} (seen by {who})"
            )),
            Some(_) => {}
            None => {
                self.leader_of_epoch.insert(epoch, leader);
            }
        }
    }

    /// `register_and_heartbeat` on the node and `ControllerService::process`
    /// on the controller: register (fencing the old incarnation first),
    /// then heartbeat at once, which unfences.
    pub(super) fn heartbeat(&mut self, id: i32) {
        let now = self.now_ms;
        let (alive, registered, last, incarnation) = {
            let n = self.node(id);
            (n.alive, n.registered, n.last_heartbeat_ms, n.incarnation)
        };
        if !alive || !self.up(id, CONTROLLER) {
            return;
        }
        if !registered {
            self.ctl.heartbeats.touch(id, now as i64);
            let mut records = Vec::new();
            if self.ctl.image.brokers.contains_key(&id) {
                records.extend(logic::fence_broker(&self.ctl.image, id).unwrap_or_default());
            }
            let listeners = vec![Listener {
                name: "PLAINTEXT".into(),
                host: "sim".into(),
                port: 9000 + id as u16,
            }];
            records.extend(logic::register_broker(id, incarnation, listeners, None));
            self.note(format!("node {id} registers"));
            self.commit(records);
            self.node_mut(id).registered = true;
            if !self.as_is.serve_stale_image {
                // Kafka's initial catch-up: serve only the image that
                // already fences the previous incarnation.
                self.meta_sync(id, true);
                self.apply_local_image(id);
            }
        } else if now < last + HEARTBEAT_INTERVAL_MS {
            return;
        }
        self.node_mut(id).last_heartbeat_ms = now;
        match self.ctl.image.brokers.get(&id) {
            Some(b) if b.incarnation == incarnation => {
                self.ctl.heartbeats.touch(id, now as i64);
                let records = logic::unfence_broker(&self.ctl.image, id).expect("unfence");
                self.commit(records);
            }
            _ => self.node_mut(id).registered = false,
        }
    }

    /// `ControllerService::expire_sessions`.
    pub(super) fn expire_sessions(&mut self) {
        let expired = self
            .ctl
            .heartbeats
            .expired(&self.ctl.image, self.now_ms as i64);
        for id in expired {
            if let Ok(records) = logic::fence_broker(&self.ctl.image, id) {
                self.note(format!("session of node {id} expired"));
                self.commit(records);
            }
        }
    }

    /// `ControllerService` on an AlterPartition: `logic::alter_partition`,
    /// committed when it passes; the answer as `maintain_isr` reads it.
    pub(super) fn alter_partition(
        &mut self,
        leader: i32,
        request: &AlterPartition,
    ) -> AlterPartitionAnswer {
        let AlterPartition {
            leader_epoch,
            partition_epoch,
            new_isr,
        } = request.clone();
        let p = partition(&self.ctl.image).cloned().expect("partition");
        let stale = p.leader != leader
            || p.leader_epoch != leader_epoch
            || p.partition_epoch != partition_epoch;
        match logic::alter_partition(
            &self.ctl.image,
            TOPIC,
            0,
            leader,
            leader_epoch,
            partition_epoch,
            new_isr.clone(),
        ) {
            Ok(records) => {
                if stale {
                    self.fail(format!(
                        "stale AlterPartition from {leader} (epoch {leader_epoch}, partition epoch \
                         {partition_epoch}) accepted against {p:?}"
                    ));
                }
                self.note(format!("AlterPartition from {leader}: isr {new_isr:?}"));
                self.stats.isr_changes += 1;
                self.commit(records);
                AlterPartitionAnswer::Committed
            }
            Err(e) => {
                if stale {
                    self.stats.stale_alter_rejected += 1;
                }
                self.note(format!(
                    "AlterPartition from {leader} {new_isr:?} refused: {e}"
                ));
                AlterPartitionAnswer::from_error(&e)
            }
        }
    }

    // ------------------------------------------------------------ nodes

    /// The node's controller voter catches up on the metadata log (all of
    /// it, or a prefix), then the broker follows the new image.
    pub(super) fn meta_sync(&mut self, id: i32, all: bool) {
        if !self.node(id).alive || !self.up(id, CONTROLLER) {
            return;
        }
        let from = self.node(id).image.offset as usize;
        let to = self.ctl.log.len();
        if from >= to {
            return;
        }
        let target = if all {
            to
        } else {
            from + 1 + self.rng.below((to - from) as u64) as usize
        };
        for i in from..target {
            let r = self.ctl.log[i].clone();
            if let Err(e) = self.node_mut(id).image.apply(i as u64 + 1, &r) {
                self.fail(format!("node {id} cannot apply {r:?}: {e}"));
            }
        }
        self.apply_local_image(id);
    }

    /// `ReplicaManager::apply_image` / `ensure_partition` for our
    /// partition: the image event to the node's state machine (a new one
    /// for a process that has none yet).
    pub(super) fn apply_local_image(&mut self, id: i32) {
        let now = self.now_ms;
        let state = {
            let n = self.node(id);
            let Some(t) = n.image.topic(TOPIC) else {
                return;
            };
            let min_isr = t
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let Some(reg) = t.partitions.get(&0) else {
                return;
            };
            if !reg.replicas.contains(&id) {
                return;
            }
            ReplicaState {
                leader: reg.leader,
                leader_epoch: reg.leader_epoch,
                partition_epoch: reg.partition_epoch,
                replicas: reg.replicas.clone(),
                isr: reg.isr.clone(),
                min_insync_replicas: min_isr,
            }
        };
        if let Some(old) = self.node(id).state() {
            if state.leader_epoch < old.leader_epoch {
                let old_epoch = old.leader_epoch;
                self.fail(format!(
                    "node {id}'s leader epoch went back from {old_epoch} to {}",
                    state.leader_epoch
                ));
            }
        }
        self.observe_leader(state.leader_epoch, state.leader, "a node's image");
        let mutation = self.as_is.last_seen_isr;
        let n = self.node_mut(id);
        let changed = n.state() != Some(&state);
        let replica = n.replica.get_or_insert_with(|| {
            let r = PartitionReplica::new(id);
            if mutation {
                r.with_mutation(Mutation::HwOverLastSeenIsr)
            } else {
                r
            }
        });
        let view = SimLog {
            log: &n.log,
            hw: n.hw,
            cache: &n.cache,
        };
        let actions = replica.on_image(state.clone(), &view, now);
        if changed {
            self.note(format!("node {id} follows image: {state:?}"));
        }
        self.execute(id, actions, None);
    }
}

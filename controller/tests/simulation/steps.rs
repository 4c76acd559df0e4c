//! The driver's steps: one fault or action per step, picked from the seeded
//! PRNG (write, isolate the leader and write to it, isolate a random node,
//! heal, crash, restart, let time pass, snapshot).

use std::time::Duration;

use rivulet_controller::raft::types::NodeId;
use tokio::time::{sleep, timeout, Instant};

use crate::sim::Sim;
use crate::VOTERS;

/// How long a write may take while a majority is connected.
const LIVENESS: Duration = Duration::from_secs(30);
/// How long a write is tried while no majority is connected.
const NO_QUORUM_TRY: Duration = Duration::from_secs(3);

impl Sim {
    pub(crate) async fn step(&mut self) {
        match self.rng.below(100) {
            0..=34 => self.step_write().await,
            35..=42 => self.step_isolate_leader().await,
            43..=52 => self.step_isolate_random(),
            53..=64 => self.step_heal(),
            65..=74 => self.step_crash().await,
            75..=86 => self.step_restart().await,
            87..=94 => self.step_advance().await,
            _ => self.step_snapshot().await,
        }
    }

    async fn step_write(&mut self) {
        let w = self.next_write();
        let quorum = self.majority_connected();
        let budget = if quorum { LIVENESS } else { NO_QUORUM_TRY };
        let t0 = Instant::now();
        let outcome = self.propose(&w.cmd, budget).await;
        let took = t0.elapsed();
        match (outcome, quorum) {
            (Some((by, index)), true) => {
                self.note(format!(
                    "write {} ({} records): acknowledged by {by} at index {index} after {took:?}",
                    w.topic,
                    w.cmd.records.len()
                ));
                self.acknowledge(w, by, index);
            }
            (Some((by, index)), false) => self.fail(format!(
                "write {} acknowledged by node {by} at index {index} while no two live nodes could talk",
                w.topic
            )),
            (None, true) => self.fail(format!(
                "write {} not acknowledged within {LIVENESS:?} although a majority is connected",
                w.topic
            )),
            (None, false) => {
                self.stats.refused_without_quorum += 1;
                self.note(format!("write {}: not acknowledged without a quorum (as expected)", w.topic));
            }
        }
    }

    /// Cut the leader off from both followers and write to it: it must not
    /// acknowledge anything while isolated.
    async fn step_isolate_leader(&mut self) {
        if self.isolated.is_some() || !self.majority_connected() {
            return self.step_heal();
        }
        let Some(leader) = self.wait_for_leader(Duration::from_secs(5)).await else {
            return self.note("isolate leader: no leader yet".into());
        };
        self.router.isolate(leader, &VOTERS);
        self.isolated = Some(leader);
        self.stats.partitions += 1;
        self.stats.isolated_leader_writes += 1;
        let w = self.next_write();
        let wait = Duration::from_millis(self.rng.range(100, 3000));
        let raft = self.nodes[&leader].raft.clone();
        let outcome = match timeout(wait, raft.client_write(w.cmd.clone())).await {
            Ok(Ok(resp)) => self.fail(format!(
                "leader {leader}, isolated from both followers, acknowledged {} at index {}",
                w.topic, resp.log_id.index
            )),
            Ok(Err(e)) => format!("refused: {e}"),
            Err(_) => format!("no answer within {wait:?}"),
        };
        self.note(format!(
            "isolate leader {leader}; write {} to it: {outcome}",
            w.topic
        ));
    }

    fn step_isolate_random(&mut self) {
        if self.isolated.is_some() {
            return self.step_heal();
        }
        let id = self.rng.pick(&VOTERS);
        self.router.isolate(id, &VOTERS);
        self.isolated = Some(id);
        self.stats.partitions += 1;
        self.note(format!("isolate node {id}"));
    }

    fn step_heal(&mut self) {
        self.router.heal();
        self.isolated = None;
        self.note("heal".into());
    }

    async fn step_crash(&mut self) {
        if self.down.is_some() {
            return self.step_restart().await;
        }
        let leaders = self.leaders_now();
        let id = if !leaders.is_empty() && self.rng.chance(50) {
            self.rng.pick(&leaders)
        } else {
            self.rng.pick(&VOTERS)
        };
        self.stop_node(id).await;
        self.down = Some(id);
        self.stats.crashes += 1;
        self.note(format!("crash node {id}"));
    }

    async fn step_restart(&mut self) {
        let Some(id) = self.down.take() else {
            return self.step_advance().await;
        };
        self.start_node(id).await;
        self.note(format!("restart node {id}"));
    }

    async fn step_advance(&mut self) {
        let d = Duration::from_millis(self.rng.range(10, 3000));
        sleep(d).await;
        self.note(format!("advance {d:?}"));
    }

    async fn step_snapshot(&mut self) {
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        let id = self.rng.pick(&live);
        let _ = self.nodes[&id].raft.trigger().snapshot().await;
        self.stats.snapshots += 1;
        self.note(format!("trigger a snapshot on node {id}"));
    }
}

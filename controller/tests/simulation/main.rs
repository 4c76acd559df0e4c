//! Seeded simulation of a 3-voter metadata quorum.
//!
//! Three real Raft nodes — openraft with the crate's durable `LogStore` and
//! `StateMachine`, each in its own temp dir — talk through an in-memory
//! network that routes every RPC straight to the target's `Raft` handle,
//! after a fault model has had its say: partitioned links (both ways,
//! `Unreachable`), random message and response drops, random delays. A
//! driver picks steps from a seeded PRNG — write a batch of metadata
//! records through the leader, isolate a node, isolate the leader and write
//! to it, heal, crash a node (at most one down at a time), restart it,
//! snapshot, let time pass — and checks after every step:
//!
//! - at most one leader per term, over everything any node's metrics showed;
//! - every acknowledged write is durable on a majority: in the log at the
//!   index it was acknowledged at, or in a snapshot covering it;
//! - live nodes agree on every log entry both have committed;
//! - a node's published image covers everything Raft reports applied;
//! - nothing is acknowledged while no two live nodes can talk (in
//!   particular, by a leader isolated from both followers);
//! - a write is acknowledged whenever a majority is connected (liveness,
//!   within a generous virtual deadline).
//!
//! At the end everything is healed and restarted, and all three images must
//! be equal and hold every acknowledged write (whose log entry sits at the
//! same index on every node); then all three nodes restart from disk and
//! must converge again to the same image.
//!
//! Time is tokio's paused clock on a current-thread runtime: timers are
//! virtual and the clock jumps ahead whenever every task is idle. tokio
//! keeps the clock still while a `spawn_blocking` task (the log's fsyncs)
//! runs (`runtime/blocking/schedule.rs`, current-thread only), so real disk
//! latency never fires a virtual election timeout, and a crash can wait for
//! the crashed node's last file I/O by sleeping one virtual millisecond.
//! A crash cuts the node off the network, then shuts its Raft down; what it
//! had fsynced is all a restart finds.
//!
//! Replay: every failure message starts with `seed=N`; rerun that seed alone
//! with `SIM_SEED=N cargo test -p rivulet-controller --test simulation --
//! --nocapture`. `SIM_SEEDS=N` runs seeds 1..=N (default 20), `SIM_STEPS=N`
//! sets the steps per seed (default 40), `SIM_REPEAT=N` runs each seed N
//! times.
//!
//! A seed fixes the fault parameters and the driver's random stream, not
//! the whole history, so a replay may need a few repeats (`SIM_REPEAT`):
//! openraft draws election timeouts and its tick phase from an unseeded
//! `rand::rng()` (`TokioRuntime::thread_rng`; `openraft_rt::DeterministicRng`
//! would need another `AsyncRuntime` in the production `TypeConfig`), tokio
//! seeds `select!` fairness randomly unless built with `tokio_unstable`, and
//! the log's fsyncs finish on the blocking pool in real time, which orders
//! wake-ups within one virtual instant.
//!
//! Layout: `sim` is the cluster and what the driver needs to run it,
//! `steps` the driver's steps, `invariants` the checks after every step,
//! `convergence` the end of a run, `leaders` the record of who led in which
//! term, and `../common/sim_network.rs` the network, its fault model and
//! the PRNG.

mod convergence;
mod invariants;
mod leaders;
mod sim;
#[path = "../common/sim_network.rs"]
mod sim_network;
mod steps;

use rivulet_controller::raft::types::NodeId;

use sim::Sim;

const VOTERS: [NodeId; 3] = [1, 2, 3];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

fn run_seed(seed: u64, steps: u64) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let mut sim = Sim::new(seed).await;
        for _ in 0..steps {
            sim.step().await;
            sim.check_invariants().await;
        }
        sim.finish().await
    })
}

#[test]
fn three_voters_keep_acknowledged_metadata_through_crashes_and_partitions() {
    let steps = env_u64("SIM_STEPS").unwrap_or(40);
    let repeat = env_u64("SIM_REPEAT").unwrap_or(1);
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_u64("SIM_SEEDS").unwrap_or(20)).collect(),
    };
    for seed in seeds {
        for _ in 0..repeat {
            let t0 = std::time::Instant::now();
            match std::panic::catch_unwind(|| run_seed(seed, steps)) {
                Ok(summary) => println!("seed={seed}: ok in {:?}; {summary}", t0.elapsed()),
                Err(panic) => {
                    eprintln!(
                        "seed={seed} FAILED; replay with SIM_SEED={seed} (and SIM_STEPS={steps}, SIM_REPEAT=20 to retry it) cargo test -p rivulet-controller --test simulation"
                    );
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

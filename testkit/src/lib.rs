//! Rivulet's shared test kit: what the end-to-end tests, the benchmarks and
//! the crates' integration tests need to stand a broker up and talk to it,
//! written once.
//!
//! - [`ports`]: free loopback ports (one allocator) and port blocks for
//!   processes that must get the same ports back after a restart.
//! - [`dirs`]: temp data dirs (under `$RIVULET_BENCH_DIR` for benches).
//! - [`poll`]: polling with deadlines, sync and async: the one loop behind
//!   every "wait until" in the tests.
//! - [`stats`]: nearest-rank percentiles.
//! - [`procfs`]: RSS, CPU time and liveness of a process from `/proc`.
//! - [`tmpfs`]: a small tmpfs to fill a disk for real.
//! - [`postgres`]: a throwaway PostgreSQL server (initdb + pg_ctl in a temp
//!   dir, run as the `postgres` user under root), stopped on drop.
//! - [`kafka`] (feature `kafka`): rdkafka client configs, producer,
//!   consumer and admin clients, topic creation and waiting for leaders,
//!   producing and consuming records, Metadata views of partitions.
//! - [`raw`] (feature `kafka`): one request on a fresh connection, for the
//!   APIs and versions librdkafka does not speak.
//! - [`native_admin`] (feature `kafka`): librdkafka's C admin API where the
//!   rdkafka crate does not wrap it.
//! - [`process`] and [`cluster`] (feature `kafka`): the `rivulet` binary as a
//!   child process, one node or a cluster of them, that can be SIGKILLed,
//!   SIGTERMed and restarted on the same ports and data. The binary's path
//!   is a parameter: only the crate that defines the bin gets
//!   `env!("CARGO_BIN_EXE_rivulet")`.
//! - [`broker`] (feature `broker`): a broker, or a cluster of brokers, in
//!   this process on free ports with its own data dir.
//!
//! Helpers panic with a message saying what did not happen in time: they
//! run in tests and benches, where a panic is the failure report.
//! Where a caller must react to a failure (a port taken before a broker
//! bound it) they return it instead.

pub mod dirs;
pub mod fuzz;
pub mod poll;
pub mod ports;
pub mod postgres;
pub mod procfs;
pub mod stats;
pub mod tmpfs;

#[cfg(feature = "kafka")]
pub mod cluster;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod native_admin;
#[cfg(feature = "kafka")]
pub mod process;
#[cfg(feature = "kafka")]
pub mod raw;

#[cfg(feature = "broker")]
pub mod broker;

use std::time::Duration;

/// How long a test waits for any one thing by default (a client call, a
/// condition to become true, a broker to register).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What an end-to-end test file imports: the in-process broker, the
/// rdkafka helpers, raw requests, free ports and [`TIMEOUT`].
#[cfg(feature = "broker")]
pub mod prelude {
    pub use crate::broker::*;
    pub use crate::kafka::*;
    pub use crate::poll::{poll_until, wait_for, wait_for_async, Poll};
    pub use crate::ports::free_port;
    pub use crate::raw::{raw_request, topic_id};
    pub use crate::TIMEOUT;
}

//! `rivulet-protocol`: the Kafka wire formats Rivulet handles itself.
//!
//! Owns the zero-copy v2 record-batch view used on the produce and fetch paths
//! ([`record_batch`]), the record codec and compression codecs needed where
//! records must be looked at (log compaction, tests, tools) ([`records`],
//! [`compression`]), and their typed errors; the bounded decoding of request
//! frames ([`request_bounds`], a pre-pass over every request version's wire
//! layout, then [`request`] over `kafka-protocol`); Kafka framing and the
//! typed request/response client everyone talks to brokers with
//! ([`wire`]); transaction markers, Kafka's control batches ([`control`]);
//! TLS configuration, streams and the SSL principal ([`tls`]); frames whose
//! record bytes are written from where they were read ([`spliced`]).
//! Only [`wire`], [`tls`] and [`spliced`] do I/O, over the streams they are given.

pub mod compression;
pub mod control;
#[cfg(feature = "dev-certs")]
pub mod dev_certs;
pub mod error;
pub mod low_water;
pub mod record_batch;
pub mod records;
pub mod request;
pub mod request_bounds;
pub mod sasl;
pub mod spliced;
pub mod tls;
pub mod wire;

pub use error::{BatchError, RecordError};
pub use record_batch::{BatchHeader, Compression, TimestampType};

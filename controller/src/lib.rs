//! `rivulet-controller`: the KRaft-style controller.
//!
//! Owns the cluster metadata: the [`MetadataRecord`] log and the
//! [`MetadataImage`] every node builds by applying it, and the controller's
//! decisions ([`logic`]) — broker registration and fencing, topic and
//! partition creation with replica placement, config changes, ISR changes and
//! leader election. Decisions are pure functions of the image; the quorum
//! that orders and replicates records sits behind this crate's own traits.
//! It does not own partition data (that is `rivulet-storage`) nor the Kafka
//! wire protocol (that is the broker).

pub mod acl;
pub mod acl_control;
pub mod assignment;
pub mod capacity;
pub mod client_quotas;
pub mod codec;
pub mod describe_quorum;
pub mod election;
pub mod image;
pub mod liveness;
pub mod logic;
pub mod node;
pub mod raft;
pub mod reassign;
pub mod records;
pub mod scram;
pub mod service;
pub mod supervisor;
pub mod throttled_replicas;

pub use image::{ApplyError, BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
pub use logic::{BrokerHeartbeats, ControllerError};
pub use node::{parse_voters, ControllerNode, QuorumConfig, QuorumError, QuorumTls, Voter};
pub use records::{ConfigResource, Listener, MetadataRecord, NO_LEADER};
pub use service::{ControllerRequest, ControllerResponse};
pub use supervisor::QuorumHealth;

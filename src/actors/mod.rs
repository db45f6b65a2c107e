//! Actors that steer: one per store endpoint (`StorePeer`, health checks),
//! and the registry that owns them, groups them and publishes the topology
//! the query path plans on. They run on their own thread (see [`system`]);
//! data never flows through their mailboxes, and no query waits in one.

pub mod metrics;
pub mod registry;
pub mod store_peer;
pub mod system;

pub use crate::query::policy::{GroupLatency, Health, PeerStats};
pub use crate::query::topology::GroupKey;
pub use registry::{RegistryConfig, StoreRegistry};
pub use store_peer::{PeerSnapshot, PeerSource, StorePeer};

//! Actors that steer: one per store endpoint (`StorePeer`), one per group of
//! interchangeable or replicated stores (`StoreGroup`), and the registry
//! that owns them and answers which stores a query needs. They run on their
//! own thread (see [`system`]); data never flows through their mailboxes.

pub mod metrics;
pub mod registry;
pub mod store_group;
pub mod store_peer;
pub mod system;

pub use registry::{RegistryConfig, StoreRegistry};
pub use store_group::{GroupKey, GroupLatency, StoreGroup};
pub use store_peer::{Health, PeerSnapshot, PeerSource, PeerStats, StorePeer};

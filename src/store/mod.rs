//! The Store API's adapters: a gRPC server that serves any [`Store`], a
//! remote client that implements it over gRPC, an in-memory store and a
//! fault-injecting wrapper. The trait and its types live in
//! [`crate::storeapi`] and are re-exported here.

mod client;
mod exemplars;
pub mod external;
pub mod faulty;
mod mem;
mod metadata;
pub mod metrics;
mod rules;
mod server;
mod services;
mod targets;

pub use client::{ClientConfig, ClientTls, RemoteStore};
pub(crate) use exemplars::MAX_EXEMPLARS;
pub use faulty::{Fault, FaultyStore};
pub use mem::MemStore;
pub use server::{serve, serve_limited, serve_secured, ServeLimits, StoreService};

pub use crate::storeapi::{
    validate_range, LabelsRequest, LabelsResponse, Meta, MetadataRequest, MetadataResponse,
    PartialResponse, PeerType, SeriesFrame, SeriesRequest, SeriesStream, Store, StoreError,
    StoreInfo,
};

/// The gRPC metadata key that carries [`SeriesRequest::hops`].
pub const HOPS_METADATA: &str = "skein-hops";

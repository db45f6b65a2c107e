//! `skein store`: Prometheus TSDB blocks from an object-storage bucket,
//! served over the Store API as a STORE peer. Gateways on one bucket share
//! a store group and the querier hedges between them.

pub mod store;

pub use store::{BlockInfo, BlockSeries, GatewayStore};

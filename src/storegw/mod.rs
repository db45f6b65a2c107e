//! `skein store`: Prometheus TSDB blocks from an object-storage bucket,
//! served over the Store API as a STORE peer. Gateways on one bucket share
//! a store group and the querier hedges between them.

pub mod bounds;
pub mod cache;
pub mod role;
pub mod store;
pub mod sync;
pub mod tsdb_block;

pub use bounds::{parse_time_bound, TimeBound};
pub use store::{BlockInfo, BlockSeries, GatewayStore};
pub use sync::{BlockLoader, SyncReport, Syncer};

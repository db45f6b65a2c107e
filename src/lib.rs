//! skein: query many Prometheus servers and block stores as one.

pub mod actors;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod error;
pub mod frontend;
pub mod fuzzing;
pub mod model;
pub mod node;
pub mod objstore;
pub mod promql;
pub mod proto;
pub mod querier;
pub mod query;
pub mod security;
pub mod series;
pub mod shutdown;
pub mod sidecar;
pub mod store;
pub mod storeapi;
pub mod storegw;
pub mod synthetic;
pub mod telemetry;
pub mod tsdb;

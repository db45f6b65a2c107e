//! skein: query many Prometheus servers and block stores as one.

pub mod api;
pub mod cli;
pub mod error;
pub mod model;
pub mod proto;
pub mod store;
pub mod synthetic;
pub mod telemetry;

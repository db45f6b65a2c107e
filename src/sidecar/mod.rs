//! Serving a real Prometheus over the Store API. So far: the remote-read
//! client that streams Prometheus' own XOR chunks (see [`remote_read`]);
//! the `skein sidecar` role (external labels, readiness, gossip) builds on
//! it.

pub mod remote_read;

//! Transport security every role shares: TLS for the Store API and HTTP
//! servers and the Store API client, with certificates reloaded from disk
//! when they change.

pub mod reload;
pub mod tls;
pub mod web;

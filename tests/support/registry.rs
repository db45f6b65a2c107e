//! Waiting for a store registry to see its stores healthy.

use std::time::{Duration, Instant};

use actix::Addr;
use skein::actors::registry::GetRegistry;
use skein::actors::{Health, StoreRegistry};

/// Waits until every peer was checked once and `members` of them are
/// healthy; panics after 10 s.
pub async fn wait_healthy(registry: &Addr<StoreRegistry>, members: usize) {
    let start = Instant::now();
    loop {
        let r = registry.send(GetRegistry).await.unwrap();
        let healthy = r
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.health == Health::Healthy)
            .count();
        if r.first_round_done && healthy == members {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stores did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

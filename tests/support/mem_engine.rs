//! A PromQL engine over an in-memory store, for engine tests.

use std::sync::Arc;

use skein::model::Series;
use skein::promql::source::StoreSource;
use skein::promql::{Engine, EngineConfig};
use skein::query::SeriesOptions;
use skein::store::MemStore;
use skein::store::{PeerType, StoreInfo};

/// An engine reading `data` from one store that covers all time.
pub fn engine_with(data: Vec<Series>, cfg: EngineConfig) -> Engine {
    let info = StoreInfo {
        label_sets: vec![],
        min_time: i64::MIN,
        max_time: i64::MAX,
        peer_type: PeerType::Store,
        store_group_id: String::new(),
        component: "store".into(),
        supports_without_replica_labels: true,
    };
    let store = MemStore::new(info, data).unwrap();
    Engine::new(Arc::new(StoreSource(Arc::new(store))), cfg)
}

/// Series options without deduplication.
pub fn opts() -> SeriesOptions {
    SeriesOptions {
        dedup: false,
        replica_labels: vec![],
        partial_response: true,
        counter: false,
        max_resolution_ms: 0,
        weigh_counts: false,
        deadline: None,
        lookback_ms: None,
    }
}

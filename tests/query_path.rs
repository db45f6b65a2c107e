//! The query path against in-process stores served over real gRPC, which can
//! be made slow, stalled mid-stream or failing: hedging within STORE groups,
//! resuming broken answers, SOURCE fan-out, deduplication, partial
//! responses, and series that a store splits over several frames.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/registry.rs"]
mod registry_support;

use actix::{Actor, Addr};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein::actors::registry::{GetRegistry, SubscribeTopology};
use skein::actors::system::ActorSystem;
use skein::actors::{RegistryConfig, StoreRegistry};
use skein::model::{Labels, MatchOp, Matcher, Sample, Series};
use skein::proto::thanos as pb;
use skein::query::merge::decode_series;
use skein::query::{HedgeMode, Querier, QueryConfig, RouteConfig, SeriesOptions};
use skein::store::{
    Fault, FaultyStore, MemStore, PeerType, SeriesFrame, SeriesRequest, SeriesStream, StoreError,
    StoreInfo, StoreService,
};
use skein::synthetic::{generate, GeneratorConfig};

const END: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// Generated series, sorted as a store sends them.
fn data(seed: u64, labels: &[(&str, &str)], gaps: Vec<(i64, i64)>) -> Vec<Series> {
    let mut v = generate(&GeneratorConfig {
        seed,
        targets: 3,
        interval_ms: 15_000,
        start_ms: END - HOUR,
        end_ms: END,
        gaps,
        external_labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
    })
    .unwrap();
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v
}

/// Compares without printing megabytes of chunks on failure.
fn same(got: &[Series], want: &[Series]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a == b)
}

async fn serve(
    series: Vec<Series>,
    labels: &[(&str, &str)],
    peer_type: PeerType,
    group: &str,
    fault: Fault,
    stop: &CancellationToken,
) -> String {
    let store = store(series, labels, peer_type, group, fault);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(skein::store::serve(listener, Arc::new(store), stop.clone()));
    addr
}

fn store(
    series: Vec<Series>,
    labels: &[(&str, &str)],
    peer_type: PeerType,
    group: &str,
    fault: Fault,
) -> FaultyStore<MemStore> {
    let info = StoreInfo {
        label_sets: vec![Labels::from_pairs(labels.iter().copied()).unwrap()],
        min_time: END - HOUR,
        max_time: END,
        peer_type,
        store_group_id: group.into(),
        component: peer_type.component().into(),
        supports_without_replica_labels: true,
    };
    FaultyStore::new(MemStore::new(info, series).unwrap(), fault)
}

struct Setup {
    querier: Querier,
    registry: Addr<StoreRegistry>,
    _system: ActorSystem,
}

async fn querier(endpoints: Vec<String>, route: RouteConfig, replica_labels: &[&str]) -> Setup {
    let mut rc = RegistryConfig::for_test();
    let n = endpoints.len();
    rc.endpoints = endpoints;
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    let querier = Querier::new(
        registry.send(SubscribeTopology).await.unwrap(),
        QueryConfig {
            route,
            replica_labels: replica_labels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    registry_support::wait_healthy(&registry, n).await;
    Setup {
        querier,
        registry,
        _system: system,
    }
}

fn route(hedge: HedgeMode, response_timeout: Duration) -> RouteConfig {
    RouteConfig {
        hedge,
        response_timeout,
        hedge_min_delay: Duration::from_millis(5),
        hedge_max_delay: Duration::from_millis(100),
        hedge_quantile: 0.9,
        ..RouteConfig::default()
    }
}

fn all() -> SeriesRequest {
    SeriesRequest::new(
        END - 2 * HOUR,
        END,
        vec![Matcher::new(MatchOp::Regex, "job", ".+").unwrap()],
    )
}

async fn collect(s: SeriesStream) -> (Vec<Series>, Vec<String>, Option<StoreError>) {
    let mut series = Vec::new();
    let mut warnings = Vec::new();
    let mut s = s;
    while let Some(f) = s.next().await {
        match f {
            Ok(SeriesFrame::Series(x)) => series.push(x),
            Ok(SeriesFrame::Warning(w)) => warnings.push(w),
            Err(e) => return (series, warnings, Some(e)),
        }
    }
    (series, warnings, None)
}

fn opts(q: &Querier, dedup: bool, partial: bool) -> SeriesOptions {
    q.options(Some(dedup), None, Some(partial))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_does_not_stall_its_store_group() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let want = data(1, &labels, vec![]);
    let good = serve(
        want.clone(),
        &labels,
        PeerType::Store,
        "bucket",
        Fault::None,
        &stop,
    )
    .await;
    let stalled = serve(
        want.clone(),
        &labels,
        PeerType::Store,
        "bucket",
        Fault::StallAfter(0),
        &stop,
    )
    .await;
    for hedge in [HedgeMode::Adaptive, HedgeMode::Race, HedgeMode::Off] {
        let s = querier(
            vec![good.clone(), stalled.clone()],
            route(hedge, Duration::from_millis(500)),
            &[],
        )
        .await;
        for _ in 0..6 {
            let start = Instant::now();
            let (got, warnings, err) = collect(
                s.querier
                    .series_with(all(), opts(&s.querier, false, true))
                    .await
                    .unwrap(),
            )
            .await;
            let took = start.elapsed();
            assert!(
                err.is_none() && warnings.is_empty(),
                "{hedge:?}: {err:?} {warnings:?}"
            );
            assert!(
                same(&got, &want),
                "{hedge:?}: incomplete answer ({} of {} series)",
                got.len(),
                want.len()
            );
            // The per-frame timeout bounds even the mode without hedging.
            assert!(
                took < Duration::from_millis(1_500),
                "{hedge:?} took {took:?}"
            );
        }
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_breaks_off_resumes_on_another_member() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let want = data(2, &labels, vec![]);
    for fault in [Fault::StallAfter(5), Fault::FailAfter(7)] {
        let a = serve(want.clone(), &labels, PeerType::Store, "b", fault, &stop).await;
        let b = serve(
            want.clone(),
            &labels,
            PeerType::Store,
            "b",
            Fault::Delay(Duration::from_millis(30)),
            &stop,
        )
        .await;
        // Race would hide the fault; the mode without hedging must resume.
        let s = querier(
            vec![a, b],
            route(HedgeMode::Off, Duration::from_millis(300)),
            &[],
        )
        .await;
        for _ in 0..4 {
            let (got, warnings, err) = collect(
                s.querier
                    .series_with(all(), opts(&s.querier, false, true))
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                err.is_none() && warnings.is_empty(),
                "{fault:?}: {err:?} {warnings:?}"
            );
            assert_eq!(got.len(), want.len(), "{fault:?}: every series once");
            assert!(same(&got, &want), "{fault:?}: answer differs");
        }
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_no_answer_is_a_warning_or_an_error() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let d = data(3, &labels, vec![]);
    let a = serve(d.clone(), &labels, PeerType::Store, "b", Fault::Fail, &stop).await;
    let b = serve(
        d.clone(),
        &labels,
        PeerType::Store,
        "b",
        Fault::FailAfter(2),
        &stop,
    )
    .await;
    let other = [("region", "us")];
    let healthy = serve(
        data(4, &other, vec![]),
        &other,
        PeerType::Store,
        "c",
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a.clone(), b.clone(), healthy],
        route(HedgeMode::Adaptive, Duration::from_millis(300)),
        &[],
    )
    .await;

    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&a) && warnings[0].contains(&b),
        "names both peers: {}",
        warnings[0]
    );
    // The healthy group's data, and what the broken group sent before it broke.
    assert!(got.iter().any(|x| x.labels.get("region") == Some("us")));

    let (_, _, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, false))
            .await
            .unwrap(),
    )
    .await;
    let err = err.expect("partial response off: an error");
    assert!(err.to_string().contains(&a), "{err}");
    stop.cancel();
}

fn replica_data(replica: &str, gaps: Vec<(i64, i64)>) -> Vec<Series> {
    data(9, &[("replica", replica)], gaps)
}

/// A SOURCE pair: replica "a" and replica "b" (with `b_fault`) served
/// over gRPC; their addresses.
async fn replica_pair(
    a: Vec<Series>,
    b: Vec<Series>,
    b_fault: Fault,
    stop: &CancellationToken,
) -> (String, String) {
    let a = serve(
        a,
        &[("replica", "a")],
        PeerType::Source,
        "",
        Fault::None,
        stop,
    )
    .await;
    let b = serve(b, &[("replica", "b")], PeerType::Source, "", b_fault, stop).await;
    (a, b)
}

fn samples(s: &Series) -> Vec<Sample> {
    let mut out = Vec::new();
    decode_series(&s.chunks, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_deduplicated_into_gap_free_series() {
    let stop = CancellationToken::new();
    let (a, b) = replica_pair(
        replica_data("a", vec![(END - 40 * 60_000, END - 30 * 60_000)]),
        replica_data("b", vec![(END - 20 * 60_000, END - 10 * 60_000)]),
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;

    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, true, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none() && warnings.is_empty(), "{err:?} {warnings:?}");
    let plain = data(9, &[], vec![]);
    assert_eq!(got.len(), plain.len(), "one series per label set");
    for (g, p) in got.iter().zip(&plain) {
        assert_eq!(g.labels, p.labels, "replica label removed");
        let v = samples(g);
        // Both replicas scrape on the same grid: a switch costs at most two
        // samples (the penalty window), the 10-minute gaps are gone.
        for w in v.windows(2) {
            assert!(
                w[1].t - w[0].t <= 45_000,
                "gap in {} at {}",
                g.labels,
                w[0].t
            );
        }
        let full = samples(p);
        assert!(
            v.len() + 4 >= full.len() && v.len() <= full.len(),
            "{}: {} of {}",
            g.labels,
            v.len(),
            full.len()
        );
    }

    // dedup=false: both replicas, with their replica labels.
    let (got, _, _) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, false, true))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.len(), 2 * plain.len());
    assert!(got.iter().all(|x| x.labels.get("replica").is_some()));
    let sorted = got.windows(2).all(|w| w[0].labels < w[1].labels);
    assert!(sorted);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_replica_gives_a_warning_and_the_other_replicas_data() {
    let stop = CancellationToken::new();
    let (a, b) = replica_pair(
        replica_data("a", vec![]),
        replica_data("b", vec![]),
        Fault::Fail,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b.clone()],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;
    let (got, warnings, err) = collect(
        s.querier
            .series_with(all(), opts(&s.querier, true, true))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&b), "{}", warnings[0]);
    assert_eq!(got.len(), data(9, &[], vec![]).len());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_show_no_false_reset_across_a_replica_switch() {
    let stop = CancellationToken::new();
    // Replica b runs 2 behind replica a; a has a gap, so the output switches.
    let mk = |replica: &str, lag: f64, gap: Option<(i64, i64)>| -> Vec<Series> {
        let labels =
            Labels::from_pairs([("__name__", "c_total"), ("job", "j"), ("replica", replica)])
                .unwrap();
        let samples: Vec<Sample> = (0..240)
            .map(|i| {
                (
                    END - HOUR + i * 15_000 + if lag > 0.0 { 3_000 } else { 0 },
                    i as f64 * 10.0 - lag,
                )
            })
            .filter(|(t, _)| !gap.is_some_and(|(a, b)| *t >= a && *t < b))
            .map(|(t, v)| Sample { t, v })
            .collect();
        vec![Series {
            labels,
            chunks: skein::model::Chunk::encode_xor(&samples, 120).unwrap(),
        }]
    };
    let (a, b) = replica_pair(
        mk("a", 0.0, Some((END - 30 * 60_000, END - 20 * 60_000))),
        mk("b", 2.0, None),
        Fault::None,
        &stop,
    )
    .await;
    let s = querier(
        vec![a, b],
        route(HedgeMode::Adaptive, Duration::from_secs(2)),
        &["replica"],
    )
    .await;
    let mut o = opts(&s.querier, true, true);
    o.counter = true;
    let (got, _, _) = collect(s.querier.series_with(all(), o).await.unwrap()).await;
    assert_eq!(got.len(), 1);
    let v = samples(&got[0]);
    for w in v.windows(2) {
        assert!(
            w[1].v >= w[0].v,
            "false reset {} -> {} at {}",
            w[0].v,
            w[1].v,
            w[1].t
        );
    }
    stop.cancel();
    let _ = &s.registry;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_endpoint_that_is_down_counts_as_failed() {
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let up = serve(
        data(6, &labels, vec![]),
        &labels,
        PeerType::Store,
        "a",
        Fault::None,
        &stop,
    )
    .await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut rc = RegistryConfig::for_test();
    rc.endpoints = vec![up];
    rc.strict_endpoints = vec![down.clone()];
    let rt = tokio::runtime::Handle::current();
    let (system, registry) =
        ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
    let q = Querier::new(
        registry.send(SubscribeTopology).await.unwrap(),
        QueryConfig {
            route: route(HedgeMode::Adaptive, Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let start = Instant::now();
    while !registry.send(GetRegistry).await.unwrap().first_round_done {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (got, warnings, err) = collect(
        q.series_with(all(), q.options(Some(false), None, Some(true)))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert!(!got.is_empty(), "the healthy store's data");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&down),
        "names the strict endpoint: {}",
        warnings[0]
    );
    let (_, _, err) = collect(
        q.series_with(all(), q.options(Some(false), None, Some(false)))
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_some_and(|e| e.to_string().contains(&down)));
    stop.cancel();
    drop(system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queriers_that_ask_each_other_stop_at_the_hop_limit() {
    // Two queriers, each configured with the other as an --endpoint; the
    // first also has a real store, so both have data to ask each other for.
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aa = la.local_addr().unwrap().to_string();
    let ab = lb.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let labels = [("region", "eu")];
    let real = serve(
        data(8, &labels, vec![]),
        &labels,
        PeerType::Store,
        "s",
        Fault::None,
        &stop,
    )
    .await;
    let mut systems = Vec::new();
    let mut queriers = Vec::new();
    for (listener, others) in [(la, vec![ab.clone(), real]), (lb, vec![aa.clone()])] {
        let mut rc = RegistryConfig::for_test();
        rc.endpoints = others;
        let rt = tokio::runtime::Handle::current();
        let (system, registry) =
            ActorSystem::start(move || StoreRegistry::new(rc, rt).start()).unwrap();
        let cfg = QueryConfig {
            route: route(HedgeMode::Off, Duration::from_secs(5)),
            ..Default::default()
        };
        let q = Querier::new(registry.send(SubscribeTopology).await.unwrap(), cfg);
        tokio::spawn(skein::store::serve(
            listener,
            Arc::new(q.clone()),
            stop.clone(),
        ));
        systems.push(system);
        queriers.push(q);
    }
    // Info answers travel around the loop within a few health checks.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let start = Instant::now();
    let opts = queriers[0].options(Some(false), None, Some(false));
    let (_, _, err) = collect(queriers[0].series_with(all(), opts).await.unwrap()).await;
    let err = err.expect("a loop is an error");
    assert!(err.to_string().contains("loop"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    stop.cancel();
}

/// A store that sends every series as Thanos may: one frame per chunk, each
/// repeating the labels, and runs of frames packed into batch frames, so
/// one series spans several frames and batches.
#[derive(Clone)]
struct Splitting(StoreService);

type Frames = Pin<Box<dyn Stream<Item = Result<pb::SeriesResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl pb::store_server::Store for Splitting {
    async fn info(
        &self,
        r: tonic::Request<pb::InfoRequest>,
    ) -> Result<tonic::Response<pb::InfoResponse>, tonic::Status> {
        pb::store_server::Store::info(&self.0, r).await
    }

    type SeriesStream = Frames;

    async fn series(
        &self,
        r: tonic::Request<pb::SeriesRequest>,
    ) -> Result<tonic::Response<Frames>, tonic::Status> {
        use pb::series_response::Result as F;
        let mut inner = pb::store_server::Store::series(&self.0, r)
            .await?
            .into_inner();
        let out = async_stream::stream! {
            let mut batch: Vec<pb::Series> = Vec::new();
            let mut n = 0usize;
            while let Some(frame) = inner.next().await {
                let s = match frame {
                    Ok(pb::SeriesResponse { result: Some(F::Series(s)) }) => s,
                    other => {
                        yield other;
                        continue;
                    }
                };
                for c in s.chunks {
                    let part = pb::Series { labels: s.labels.clone(), chunks: vec![c] };
                    n += 1;
                    // Alternately alone and in batches of three.
                    if (n / 5) % 2 == 0 {
                        if !batch.is_empty() {
                            let series = std::mem::take(&mut batch);
                            yield Ok(pb::SeriesResponse {
                                result: Some(F::Batch(pb::SeriesBatch { series })),
                            });
                        }
                        yield Ok(pb::SeriesResponse { result: Some(F::Series(part)) });
                    } else {
                        batch.push(part);
                        if batch.len() == 3 {
                            let series = std::mem::take(&mut batch);
                            yield Ok(pb::SeriesResponse {
                                result: Some(F::Batch(pb::SeriesBatch { series })),
                            });
                        }
                    }
                }
            }
            if !batch.is_empty() {
                yield Ok(pb::SeriesResponse {
                    result: Some(F::Batch(pb::SeriesBatch { series: batch })),
                });
            }
        };
        Ok(tonic::Response::new(Box::pin(out)))
    }

    async fn label_names(
        &self,
        r: tonic::Request<pb::LabelNamesRequest>,
    ) -> Result<tonic::Response<pb::LabelNamesResponse>, tonic::Status> {
        pb::store_server::Store::label_names(&self.0, r).await
    }

    async fn label_values(
        &self,
        r: tonic::Request<pb::LabelValuesRequest>,
    ) -> Result<tonic::Response<pb::LabelValuesResponse>, tonic::Status> {
        pb::store_server::Store::label_values(&self.0, r).await
    }
}

async fn serve_split(
    series: Vec<Series>,
    labels: &[(&str, &str)],
    peer_type: PeerType,
    group: &str,
    stop: &CancellationToken,
) -> String {
    let svc = StoreService::new(Arc::new(store(
        series,
        labels,
        peer_type,
        group,
        Fault::None,
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = stop.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::store_server::StoreServer::new(Splitting(svc.clone())))
            .add_service(pb::info::info_server::InfoServer::new(svc))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            ),
    );
    addr
}

/// Every series read whole from the querier, as (labels, samples).
async fn read_all(q: &Querier, dedup: bool) -> Vec<(Labels, Vec<Sample>)> {
    let (got, warnings, err) =
        collect(q.series_with(all(), opts(q, dedup, false)).await.unwrap()).await;
    assert!(err.is_none() && warnings.is_empty(), "{err:?} {warnings:?}");
    got.iter().map(|s| (s.labels.clone(), samples(s))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_split_over_frames_and_batches_are_read_whole() {
    let stop = CancellationToken::new();
    let gaps = |from: i64| vec![(END - from * 60_000, END - (from - 10) * 60_000)];
    let (a, b) = (replica_data("a", gaps(40)), replica_data("b", gaps(20)));
    assert!(
        a.iter().all(|s| s.chunks.len() >= 2),
        "series of several chunks"
    );

    // A SOURCE pair: deduplicated (and not) exactly as the same pair
    // sending one frame per series.
    let plain = replica_pair(a.clone(), b.clone(), Fault::None, &stop).await;
    let split = [
        serve_split(a.clone(), &[("replica", "a")], PeerType::Source, "", &stop).await,
        serve_split(b.clone(), &[("replica", "b")], PeerType::Source, "", &stop).await,
    ];
    let r = route(HedgeMode::Adaptive, Duration::from_secs(2));
    let want = querier(vec![plain.0, plain.1], r.clone(), &["replica"]).await;
    let got = querier(split.to_vec(), r.clone(), &["replica"]).await;
    for dedup in [true, false] {
        let (w, g) = (
            read_all(&want.querier, dedup).await,
            read_all(&got.querier, dedup).await,
        );
        assert_eq!(w.len(), g.len(), "dedup={dedup}");
        assert!(w == g, "dedup={dedup}: split frames change the answer");
    }

    // A STORE group of two: every chunk of every series, once.
    let labels = [("region", "eu")];
    let d = data(4, &labels, vec![]);
    let group = [
        serve_split(d.clone(), &labels, PeerType::Store, "g", &stop).await,
        serve_split(d.clone(), &labels, PeerType::Store, "g", &stop).await,
    ];
    let s = querier(group.to_vec(), r, &[]).await;
    let got = read_all(&s.querier, true).await;
    let want: Vec<(Labels, Vec<Sample>)> =
        d.iter().map(|x| (x.labels.clone(), samples(x))).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the group's answer lost or repeated frames");
    stop.cancel();
}

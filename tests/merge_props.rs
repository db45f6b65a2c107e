//! Property tests of the streaming merge: for random sorted inputs the
//! output is sorted, every label set appears once, and after combining,
//! every input sample is in the output exactly once per timestamp.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use proptest::prelude::*;

use skein::model::{Chunk, Labels, Sample, Series};
use skein::query::merge::{decode_series, merge, MergedFrame};
use skein::query::{combine, DedupFunc};
use skein::store::{SeriesFrame, SeriesStream, StoreError};

fn input() -> impl Strategy<Value = Vec<(u8, Vec<i64>)>> {
    // Series keyed by a small label alphabet; samples at random timestamps.
    prop::collection::btree_map(0u8..12, prop::collection::btree_set(0i64..500, 1..40), 0..8)
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, ts)| (k, ts.into_iter().collect()))
                .collect()
        })
}

fn labels(k: u8) -> Labels {
    // Varying lengths make prefix ordering matter.
    let mut pairs = vec![("a".to_string(), format!("{}", k % 3))];
    if k % 2 == 0 {
        pairs.push(("b".to_string(), format!("{k}")));
    }
    pairs.push(("k".to_string(), format!("{k:02}")));
    Labels::from_pairs(pairs).unwrap()
}

fn to_series(k: u8, ts: &[i64], value: f64, per_chunk: usize) -> Series {
    let samples: Vec<Sample> = ts.iter().map(|&t| Sample { t, v: value }).collect();
    Series {
        labels: labels(k),
        chunks: Chunk::encode_xor(&samples, per_chunk).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_sorted_complete_and_once(inputs in prop::collection::vec(input(), 1..5), per_chunk in 1usize..50) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut want: BTreeMap<Labels, BTreeSet<i64>> = BTreeMap::new();
        let mut streams: Vec<SeriesStream> = Vec::new();
        for (i, inp) in inputs.iter().enumerate() {
            let mut series: Vec<Series> = inp.iter().map(|(k, ts)| to_series(*k, ts, i as f64, per_chunk)).collect();
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            for s in &series {
                let mut v = Vec::new();
                decode_series(&s.chunks, &mut v).unwrap();
                want.entry(s.labels.clone()).or_default().extend(v.iter().map(|x| x.t));
            }
            let frames: Vec<Result<SeriesFrame, StoreError>> = series.into_iter().map(|s| Ok(SeriesFrame::Series(s))).collect();
            streams.push(Box::pin(futures::stream::iter(frames)));
        }
        let out: Vec<_> = rt.block_on(merge(streams).collect::<Vec<_>>());
        let mut seen: Vec<Labels> = Vec::new();
        let (mut bufs, mut tmp) = (Vec::new(), Vec::new());
        for item in out {
            let MergedFrame::Series(g) = item.unwrap() else { panic!("no warnings were sent") };
            prop_assert!(seen.last().is_none_or(|l| *l < g.labels), "sorted and unique");
            seen.push(g.labels.clone());
            let s = combine(g, false, DedupFunc::Penalty, false, &mut bufs, &mut tmp).unwrap();
            let mut v = Vec::new();
            decode_series(&s.chunks, &mut v).unwrap();
            let ts: Vec<i64> = v.iter().map(|x| x.t).collect();
            let expected: Vec<i64> = want[&s.labels].iter().copied().collect();
            prop_assert_eq!(ts, expected, "every timestamp once");
        }
        prop_assert_eq!(seen.len(), want.len());
    }
}

fn label_set() -> impl Strategy<Value = Labels> {
    // Names where external labels may also be; values from a tiny alphabet
    // so that prefixes and collisions happen.
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c", "e", "r", "z"]),
        prop::sample::select(vec!["0", "1", "2"]),
        0..5,
    )
    .prop_map(|m| Labels::from_pairs(m).unwrap())
}

/// A store's answer of label-only series, sorted by the series' own labels
/// as a store sends them; with the external labels on them when `carried`
/// (remote read), without (blocks).
fn store_answer(own: &BTreeSet<Labels>, ext: &Labels, carried: bool) -> SeriesStream {
    let frames: Vec<Result<SeriesFrame, StoreError>> = own
        .iter()
        .map(|o| {
            let labels = if carried {
                ext.merged_with(o)
            } else {
                o.clone()
            };
            Ok(SeriesFrame::Series(Series {
                labels,
                chunks: Vec::new(),
            }))
        })
        .collect();
    Box::pin(futures::stream::iter(frames))
}

/// The label sets of an answer, in its order; a warning or an error fails.
async fn label_sets(answer: SeriesStream) -> Vec<Labels> {
    answer
        .map(|f| match f.unwrap() {
            SeriesFrame::Series(s) => s.labels,
            SeriesFrame::Warning(w) => panic!("warning {w}"),
        })
        .collect()
        .await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// External labels put on a sorted answer (blocks: series without them;
    /// remote read: series that carry them), replica labels stripped: the
    /// answer is the same label sets as computing each one apart, and it
    /// is sorted.
    #[test]
    fn external_labels_keep_the_answer_sorted(
        own in prop::collection::btree_set(label_set(), 0..12),
        ext in label_set(),
        strip in prop::collection::vec(prop::sample::select(vec!["e".to_string(), "r".to_string()]), 0..2),
        carried in any::<bool>(),
    ) {
        use skein::store::external::with_external_labels;
        // Series of their own with a label named like an external one can
        // be reordered beyond a run; the merge refuses such an answer as
        // unsorted (an error, never a silent mix-up), so they are left out.
        let own: BTreeSet<Labels> = own
            .into_iter()
            .map(|mut o| {
                o.retain(|l| ext.get(&l.name).is_none());
                o
            })
            .collect();
        let input = store_answer(&own, &ext, carried);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(label_sets(with_external_labels(input, ext.clone(), strip.clone())));
        // A series' own label wins; the external labels named in `strip`
        // (value and all) are removed.
        let removed: Vec<_> = ext.iter().filter(|l| strip.contains(&l.name)).collect();
        let mut want: Vec<Labels> = own
            .iter()
            .map(|o| {
                let mut l = ext.merged_with(o);
                l.retain(|x| !removed.contains(&x));
                l
            })
            .collect();
        want.sort();
        prop_assert!(got.windows(2).all(|w| w[0] <= w[1]), "sorted: {got:?}");
        prop_assert_eq!(got, want);
    }

    /// Series with labels of their own named like external ones (a
    /// target's own `cluster`): once the store has seen one, its answers
    /// come out sorted and whole, each series with its own label kept.
    #[test]
    fn series_with_external_label_names_are_sorted_once_seen(
        own in prop::collection::btree_set(label_set(), 0..12),
        ext in label_set(),
        carried in any::<bool>(),
    ) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use skein::store::external::with_external_labels_tracked;
        // Remote read puts the external labels on itself: a series' own
        // label with the external value cannot be told from them.
        let own: BTreeSet<Labels> = own
            .into_iter()
            .map(|mut o| {
                if carried {
                    o.retain(|l| ext.get(&l.name) != Some(l.value.as_str()));
                }
                o
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let clashes = Arc::new(AtomicBool::new(false));
        let run = |clashes: Arc<AtomicBool>| -> Vec<Labels> {
            let input = store_answer(&own, &ext, carried);
            rt.block_on(label_sets(with_external_labels_tracked(input, ext.clone(), vec![], carried, clashes)))
        };
        let first = run(clashes.clone());
        let clash = own.iter().any(|o| o.iter().any(|l| ext.get(&l.name).is_some()));
        prop_assert_eq!(clashes.load(Ordering::Relaxed), clash);
        let got = if clash { run(clashes.clone()) } else { first };
        let mut want: Vec<Labels> = own.iter().map(|o| ext.merged_with(o)).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

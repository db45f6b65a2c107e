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

//! Exemplars (`thanos.Exemplars`, Prometheus' `/api/v1/query_exemplars`):
//! the trace references kept beside samples, per series, how the answers
//! of an HA pair collapse into one, and how a query's selectors are fitted
//! to a store whose external labels its own data does not carry.

use std::cmp::Ordering;

use super::PartialResponse;
use crate::model::{Labels, Matcher};

#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarsRequest {
    /// A PromQL expression: the series its selectors match.
    pub query: String,
    /// Milliseconds, both inclusive.
    pub start: i64,
    pub end: i64,
    pub partial_response: PartialResponse,
    pub hops: u32,
    pub deadline: Option<std::time::Instant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds.
    pub ts: i64,
}

impl Exemplar {
    fn order(&self, other: &Self) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then_with(|| self.labels.cmp(&other.labels))
            .then_with(|| self.value.total_cmp(&other.value))
    }
}

/// One series and its exemplars.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarSeries {
    pub series_labels: Labels,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExemplarsResponse {
    pub series: Vec<ExemplarSeries>,
    pub warnings: Vec<String>,
}

impl ExemplarsResponse {
    pub fn extend(&mut self, other: ExemplarsResponse) {
        self.series.extend(other.series);
        self.warnings.extend(other.warnings);
    }

    /// How many exemplars the answer holds.
    pub fn exemplar_count(&self) -> usize {
        self.series.iter().map(|s| s.exemplars.len()).sum()
    }

    /// One entry per series, the replica labels taken off its labels: the
    /// exemplars of a pair's replicas are joined, each kept once (the same
    /// labels, value and time), in time order; series without exemplars are
    /// left out, the rest sorted by labels.
    pub fn dedup(&mut self, replica_labels: &[String]) {
        self.series.retain(|s| !s.exemplars.is_empty());
        for s in &mut self.series {
            if !replica_labels.is_empty() {
                s.series_labels = s.series_labels.without(replica_labels);
            }
        }
        self.series
            .sort_by(|a, b| a.series_labels.cmp(&b.series_labels));
        let mut out: Vec<ExemplarSeries> = Vec::with_capacity(self.series.len());
        for s in self.series.drain(..) {
            match out.last_mut() {
                Some(last) if last.series_labels == s.series_labels => {
                    last.exemplars.extend(s.exemplars)
                }
                _ => out.push(s),
            }
        }
        for s in &mut out {
            s.exemplars.sort_by(Exemplar::order);
            s.exemplars.dedup_by(|a, b| a.order(b) == Ordering::Equal);
        }
        self.series = out;
    }
}

/// What a store with `external` labels is asked for `selectors` (each a
/// selector's matchers): selectors whose matchers on external label names
/// reject the store's values are left out, and the matchers on those names
/// are taken off the rest (its own data does not carry them). `None` when
/// no selector is left: the store has nothing to say.
pub fn fit_selectors(
    selectors: &[Vec<Matcher>],
    external: &Labels,
) -> Result<Option<Vec<Vec<Matcher>>>, String> {
    let mut out = Vec::with_capacity(selectors.len());
    for sel in selectors {
        let accepts = sel
            .iter()
            .all(|m| external.get(m.name()).is_none_or(|v| m.matches(v)));
        if !accepts {
            continue;
        }
        let own: Vec<Matcher> = sel
            .iter()
            .filter(|m| external.get(m.name()).is_none())
            .cloned()
            .collect();
        if own.iter().all(|m| m.matches_empty()) {
            return Err(format!(
                "selector {} matches only by external labels; add a matcher on the series' own labels",
                selector_text(sel)
            ));
        }
        out.push(own);
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Selectors written as one PromQL expression (`{a="1"} or {b=~"2"}`).
pub fn selectors_query(selectors: &[Vec<Matcher>]) -> String {
    selectors
        .iter()
        .map(|s| selector_text(s))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn selector_text(sel: &[Matcher]) -> String {
    let parts: Vec<String> = sel.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn ex(trace: &str, value: f64, ts: i64) -> Exemplar {
        Exemplar {
            labels: l(&[("trace_id", trace)]),
            value,
            ts,
        }
    }

    #[test]
    fn a_pairs_exemplars_join_each_once_in_time_order() {
        let a = ExemplarSeries {
            series_labels: l(&[("__name__", "x"), ("replica", "a")]),
            exemplars: vec![ex("t1", 1.0, 1000), ex("t3", 3.0, 3000)],
        };
        let b = ExemplarSeries {
            series_labels: l(&[("__name__", "x"), ("replica", "b")]),
            exemplars: vec![ex("t2", 2.0, 2000), ex("t1", 1.0, 1000)],
        };
        let empty = ExemplarSeries {
            series_labels: l(&[("__name__", "y")]),
            exemplars: vec![],
        };
        let mut r = ExemplarsResponse {
            series: vec![b.clone(), empty, a.clone()],
            warnings: vec![],
        };
        r.dedup(&["replica".to_string()]);
        assert_eq!(r.series.len(), 1);
        assert_eq!(r.series[0].series_labels, l(&[("__name__", "x")]));
        assert_eq!(
            r.series[0].exemplars,
            vec![
                ex("t1", 1.0, 1000),
                ex("t2", 2.0, 2000),
                ex("t3", 3.0, 3000)
            ]
        );
        // Without replica labels, each replica's series stays apart.
        let mut r = ExemplarsResponse {
            series: vec![b, a],
            warnings: vec![],
        };
        r.dedup(&[]);
        assert_eq!(r.series.len(), 2);
        assert_eq!(r.series[0].series_labels.get("replica"), Some("a"));
        // Equal time and labels but another value: both kept.
        let mut r = ExemplarsResponse {
            series: vec![ExemplarSeries {
                series_labels: l(&[("__name__", "x")]),
                exemplars: vec![ex("t", 2.0, 5), ex("t", 1.0, 5), ex("t", 1.0, 5)],
            }],
            warnings: vec![],
        };
        r.dedup(&[]);
        assert_eq!(
            r.series[0].exemplars,
            vec![ex("t", 1.0, 5), ex("t", 2.0, 5)]
        );
    }

    #[test]
    fn selectors_fit_a_store_by_its_external_labels() {
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        let ext = l(&[("region", "eu"), ("replica", "a")]);
        let sel = vec![
            vec![
                m(MatchOp::Equal, "__name__", "x"),
                m(MatchOp::Equal, "replica", "a"),
            ],
            vec![
                m(MatchOp::Equal, "__name__", "y"),
                m(MatchOp::Equal, "region", "us"),
            ],
            vec![m(MatchOp::Regex, "job", "a|b\"c")],
        ];
        let fitted = fit_selectors(&sel, &ext).unwrap().unwrap();
        assert_eq!(
            selectors_query(&fitted),
            r#"{__name__="x"} or {job=~"a|b\"c"}"#
        );
        assert!(fit_selectors(&sel[1..2], &ext).unwrap().is_none());
        let only_external = vec![vec![m(MatchOp::Equal, "replica", "a")]];
        assert!(fit_selectors(&only_external, &ext).is_err());
        // A store without external labels is asked for the selectors as
        // they are.
        let same = fit_selectors(&sel, &Labels::default()).unwrap().unwrap();
        assert_eq!(selectors_query(&same), selectors_query(&sel));
    }

    #[test]
    fn quoted_values_read_back_through_the_parser() {
        let v = "a\"b\\c\nd\u{1}é";
        let sel = vec![vec![
            Matcher::new(MatchOp::Equal, "__name__", "x").unwrap(),
            Matcher::new(MatchOp::Equal, "l", v).unwrap(),
        ]];
        let q = selectors_query(&sel);
        let back = crate::promql::exemplar_selectors(&q).unwrap();
        assert_eq!(selectors_query(&back), q);
        assert_eq!(back[0][1].value(), v);
    }
}

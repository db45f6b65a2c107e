//! Range-query answers as the frontend handles them: parsed from a
//! querier's JSON, cut to a time range, merged by series, and written back
//! in Prometheus' format. Values stay the text the querier wrote, so the
//! frontend never changes a digit.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::prom::json;
use crate::model::Labels;

/// One series of a matrix: its labels and its points (ms, value text).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub points: Vec<(i64, Box<str>)>,
}

impl SeriesData {
    /// Rough bytes held, for the cache's budget.
    pub fn size(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 48)
            .sum();
        labels + self.points.iter().map(|p| 32 + p.1.len()).sum::<usize>()
    }
}

/// A successful range-query answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    pub series: Vec<SeriesData>,
    pub warnings: Vec<String>,
}

/// Parses a querier's successful `query_range` answer.
pub fn parse(body: &[u8]) -> Result<Matrix, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("status {}", v["status"]));
    }
    if v["data"]["resultType"] != "matrix" {
        return Err(format!("result type {}", v["data"]["resultType"]));
    }
    let mut series = Vec::new();
    for s in v["data"]["result"].as_array().ok_or("no result")? {
        let metric = s["metric"].as_object().ok_or("series without metric")?;
        let labels = Labels::from_pairs(
            metric
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        )
        .map_err(|e| e.to_string())?;
        let mut points = Vec::new();
        for p in s["values"].as_array().ok_or("series without values")? {
            let t = p[0].as_f64().ok_or("point without time")?;
            let v = p[1].as_str().ok_or("point without value")?;
            points.push(((t * 1000.0).round() as i64, v.into()));
        }
        series.push(SeriesData { labels, points });
    }
    let warnings = v["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    Ok(Matrix { series, warnings })
}

/// The points of `series` from `start` to `end` (inclusive); series left
/// without points are dropped.
pub fn slice(series: &[SeriesData], start: i64, end: i64) -> Vec<SeriesData> {
    series
        .iter()
        .filter_map(|s| {
            let lo = s.points.partition_point(|p| p.0 < start);
            let hi = s.points.partition_point(|p| p.0 <= end);
            (lo < hi).then(|| SeriesData {
                labels: s.labels.clone(),
                points: s.points[lo..hi].to_vec(),
            })
        })
        .collect()
}

/// Pieces of one answer, each covering its own steps, made one: series
/// with equal labels joined, points in time order, series in Prometheus'
/// order of label sets.
pub fn merge(parts: impl IntoIterator<Item = Vec<SeriesData>>) -> Vec<SeriesData> {
    let mut by: BTreeMap<Labels, Vec<(i64, Box<str>)>> = BTreeMap::new();
    for part in parts {
        for s in part {
            by.entry(s.labels).or_default().extend(s.points);
        }
    }
    by.into_iter()
        .map(|(labels, mut points)| {
            points.sort_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
            SeriesData { labels, points }
        })
        .collect()
}

/// A success envelope holding `series` as a matrix, with `warnings`.
pub fn write(series: &[SeriesData], warnings: &[String]) -> Vec<u8> {
    let size: usize = series.iter().map(SeriesData::size).sum();
    let mut out = json::begin_success(size + 64);
    out.extend_from_slice(br#"{"resultType":"matrix","result":["#);
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"metric":{"#);
        for (j, l) in s.labels.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json::write_str(&mut out, &l.name);
            out.push(b':');
            json::write_str(&mut out, &l.value);
        }
        out.extend_from_slice(br#"},"values":["#);
        for (j, (t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'[');
            json::write_sample_time(&mut out, *t);
            out.push(b',');
            json::write_str(&mut out, v);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    json::end_success(&mut out, warnings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000060.500,"NaN"]]},{"metric":{"job":"b"},"values":[[1700000000,"+Inf"]]}]},"warnings":["w"]}"#;

    #[test]
    fn answers_round_trip_unchanged() {
        let m = parse(ANSWER.as_bytes()).unwrap();
        assert_eq!(m.series.len(), 2);
        assert_eq!(m.series[0].points[1], (1_700_000_060_500, "NaN".into()));
        assert_eq!(
            String::from_utf8(write(&m.series, &m.warnings)).unwrap(),
            ANSWER
        );
    }

    #[test]
    fn pieces_merge_into_the_whole() {
        let m = parse(ANSWER.as_bytes()).unwrap();
        let a = slice(&m.series, 0, 1_700_000_000_000);
        let b = slice(&m.series, 1_700_000_000_001, i64::MAX);
        assert_eq!(b.len(), 1, "series without points in a piece are left out");
        assert_eq!(merge([b, a]), m.series);
    }
}

//! Writes OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
//!
//! promtool is lenient in ways that hide mistakes: a sample older than the
//! previous one of its series is dropped without a word, and so is a second
//! sample at the same timestamp. The writer refuses both, so the counts it
//! reports are the counts the TSDB ends up with.

use std::collections::BTreeSet;
use std::io::{self, Write};

use anyhow::{bail, ensure};

/// What a generated file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    /// Earliest and latest sample, in milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    pub series: usize,
    pub samples: usize,
}

pub struct OpenMetricsWriter<W: Write> {
    out: W,
    families: BTreeSet<String>,
    series_seen: BTreeSet<String>,
    current: Option<String>,
    series: usize,
    samples: usize,
    start_ms: i64,
    end_ms: i64,
}

impl<W: Write> OpenMetricsWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            families: BTreeSet::new(),
            series_seen: BTreeSet::new(),
            current: None,
            series: 0,
            samples: 0,
            start_ms: i64::MAX,
            end_ms: i64::MIN,
        }
    }

    /// Starts a metric family (`# TYPE`, `# HELP`). Each family appears
    /// once, and its series follow it.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> anyhow::Result<()> {
        ensure!(
            self.families.insert(name.to_string()),
            "family {name} written twice"
        );
        writeln!(self.out, "# TYPE {name} {kind}")?;
        writeln!(self.out, "# HELP {name} {help}")?;
        self.current = Some(name.to_string());
        Ok(())
    }

    /// One series with its samples, oldest first. `name` must belong to the
    /// current family (`foo`, `foo_total`, `foo_bucket`, ...). A series
    /// without samples is not written.
    pub fn series(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        points: &[(i64, f64)],
    ) -> anyhow::Result<()> {
        let Some(family) = &self.current else {
            bail!("series {name} before any family");
        };
        ensure!(
            name.starts_with(family.as_str()),
            "series {name} outside its family {family}"
        );
        if points.is_empty() {
            return Ok(());
        }
        for w in points.windows(2) {
            ensure!(
                w[0].0 < w[1].0,
                "{name}{labels:?}: timestamps must increase ({} then {})",
                w[0].0,
                w[1].0
            );
        }
        for (n, v) in labels {
            ensure!(
                !v.is_empty(),
                "{name}: empty value of label {n} (the TSDB would drop the label)"
            );
        }
        let mut sorted: Vec<_> = labels.to_vec();
        sorted.sort();
        let selector = format!(
            "{name}{{{}}}",
            sorted
                .iter()
                .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                .collect::<Vec<_>>()
                .join(",")
        );
        ensure!(
            self.series_seen.insert(selector.clone()),
            "series {selector} written twice"
        );
        let prefix = if labels.is_empty() {
            name.to_string()
        } else {
            selector
        };
        for &(t, v) in points {
            writeln!(self.out, "{prefix} {} {}", format_value(v), format_ts(t))?;
        }
        self.series += 1;
        self.samples += points.len();
        self.start_ms = self.start_ms.min(points[0].0);
        self.end_ms = self.end_ms.max(points[points.len() - 1].0);
        Ok(())
    }

    /// Ends the file with `# EOF`.
    pub fn finish(mut self) -> io::Result<Dataset> {
        writeln!(self.out, "# EOF")?;
        self.out.flush()?;
        Ok(Dataset {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            series: self.series,
            samples: self.samples,
        })
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as OpenMetrics spells it; the digits round-trip exactly.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v != 0.0 && (v.abs() >= 1e15 || v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Milliseconds as OpenMetrics seconds with three decimals.
pub fn format_ts(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Deterministic noise: a 64-bit mix of `a` and `b` (splitmix64).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic noise in [0, 1).
pub fn unit(a: u64, b: u64) -> f64 {
    (mix(a, b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Timestamps from `from` to `to` (both included) every `step` ms.
pub fn grid(from: i64, to: i64, step: i64) -> impl Iterator<Item = i64> {
    (0..)
        .map(move |k| from + k * step)
        .take_while(move |t| *t <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(-0.25), "-0.25");
        assert_eq!(format_value(1e300), "1e300");
        assert_eq!(format_value(2.5e-20), "2.5e-20");
        assert_eq!(format_ts(1_735_689_600_123), "1735689600.123");
        assert_eq!(format_ts(1_735_689_600_005), "1735689600.005");
    }

    #[test]
    fn writer_rejects_what_promtool_would_drop() {
        let mut w = OpenMetricsWriter::new(Vec::new());
        w.family("g", "gauge", "g").unwrap();
        assert!(w.series("g", &[], &[(2000, 1.0), (1000, 2.0)]).is_err());
        assert!(w.series("g", &[], &[(1000, 1.0), (1000, 2.0)]).is_err());
        assert!(w.series("g", &[("a", "")], &[(1000, 1.0)]).is_err());
        w.series("g", &[("a", "x\"y\n")], &[(1000, 1.0)]).unwrap();
        assert!(w.series("g", &[("a", "x\"y\n")], &[(2000, 1.0)]).is_err());
        assert!(w.family("g", "gauge", "again").is_err());
        let mut out = Vec::new();
        let mut w = OpenMetricsWriter::new(&mut out);
        w.family("c", "counter", "c").unwrap();
        w.series(
            "c_total",
            &[("b", "2"), ("a", "1")],
            &[(1000, 1.0), (16_500, 2.0)],
        )
        .unwrap();
        let d = w.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE c counter\n# HELP c c\nc_total{a=\"1\",b=\"2\"} 1 1.000\nc_total{a=\"1\",b=\"2\"} 2 16.500\n# EOF\n"
        );
        assert_eq!(
            (d.series, d.samples, d.start_ms, d.end_ms),
            (1, 2, 1000, 16_500)
        );
    }
}

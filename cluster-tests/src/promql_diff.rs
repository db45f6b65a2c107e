//! Compares two answers of the Prometheus HTTP query API: the reference
//! (Prometheus) and the side under test.
//!
//! Answers agree when both succeed with the same result type, the same
//! series (by full label set, in any order unless the query sorts by value
//! at top level), the same timestamps and values within a relative 1e-9
//! (absolute 1e-12 near zero; NaN equals NaN, infinities exactly), and the
//! same HTTP status; or when both fail with the same status and
//! `errorType`. Error messages and warnings are not compared.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::promql_data::T0;

pub type Labels = BTreeMap<String, String>;

/// A decoded successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

impl Data {
    pub fn kind(&self) -> &'static str {
        match self {
            Data::Scalar(..) => "scalar",
            Data::String(..) => "string",
            Data::Vector(_) => "vector",
            Data::Matrix(_) => "matrix",
        }
    }

    fn summary(&self) -> String {
        match self {
            Data::Scalar(t, v) => format!("scalar {} @{}", fmt_f(*v), fmt_t(*t)),
            Data::String(t, s) => format!("string {s:?} @{}", fmt_t(*t)),
            Data::Vector(v) => format!("vector of {} series", v.len()),
            Data::Matrix(m) => format!(
                "matrix of {} series, {} points",
                m.len(),
                m.iter().map(|s| s.1.len()).sum::<usize>()
            ),
        }
    }
}

/// One side's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success {
        status: u16,
        data: Data,
    },
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
    /// No usable answer: connection failure, not JSON, or a shape the API
    /// does not have.
    Invalid(String),
}

impl Outcome {
    fn summary(&self) -> String {
        match self {
            Outcome::Success { status, data } => format!("{} (HTTP {status})", data.summary()),
            Outcome::Error {
                status,
                error_type,
                message,
            } => format!("error {error_type} (HTTP {status}): {}", cut(message, 160)),
            Outcome::Invalid(why) => format!("no valid answer: {}", cut(why, 200)),
        }
    }
}

fn cut(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Decodes an HTTP answer of `/api/v1/query` or `/api/v1/query_range`.
pub fn parse_answer(status: u16, body: &[u8]) -> Outcome {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Invalid(format!("HTTP {status}, empty body"));
    }
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Outcome::Invalid(format!(
                "HTTP {status}, body is not JSON ({e}): {}",
                cut(&String::from_utf8_lossy(body), 200)
            ))
        }
    };
    match v["status"].as_str() {
        Some("success") => match parse_data(&v["data"]) {
            Ok(data) => Outcome::Success { status, data },
            Err(e) => Outcome::Invalid(format!("HTTP {status}: {e}")),
        },
        Some("error") => Outcome::Error {
            status,
            error_type: v["errorType"].as_str().unwrap_or("<none>").to_string(),
            message: v["error"].as_str().unwrap_or_default().to_string(),
        },
        _ => Outcome::Invalid(format!(
            "HTTP {status}, no status field: {}",
            cut(&v.to_string(), 200)
        )),
    }
}

fn parse_data(d: &serde_json::Value) -> Result<Data, String> {
    let result = &d["result"];
    match d["resultType"].as_str() {
        Some("scalar") => {
            let (t, v) = parse_point(result)?;
            Ok(Data::Scalar(t, v))
        }
        Some("string") => {
            let a = result.as_array().filter(|a| a.len() == 2);
            let a = a.ok_or_else(|| format!("bad string result {result}"))?;
            let t = parse_time(&a[0])?;
            let s = a[1].as_str().ok_or("string value is not a string")?;
            Ok(Data::String(t, s.to_string()))
        }
        Some("vector") => {
            let items = result.as_array().ok_or("vector result is not an array")?;
            let mut out = Vec::with_capacity(items.len());
            for s in items {
                if s.get("histogram").is_some() {
                    return Err("native histogram samples are not compared".into());
                }
                let labels = parse_labels(&s["metric"])?;
                let (t, v) = parse_point(&s["value"])?;
                out.push((labels, t, v));
            }
            Ok(Data::Vector(out))
        }
        Some("matrix") => {
            let items = result.as_array().ok_or("matrix result is not an array")?;
            let mut out = Vec::with_capacity(items.len());
            for s in items {
                if s.get("histograms").is_some() {
                    return Err("native histogram samples are not compared".into());
                }
                let labels = parse_labels(&s["metric"])?;
                let values = s["values"]
                    .as_array()
                    .ok_or("matrix series without values")?;
                let points = values.iter().map(parse_point).collect::<Result<_, _>>()?;
                out.push((labels, points));
            }
            Ok(Data::Matrix(out))
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

fn parse_labels(m: &serde_json::Value) -> Result<Labels, String> {
    let obj = m
        .as_object()
        .ok_or_else(|| format!("metric is not an object: {m}"))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("label {k} is not a string"))
        })
        .collect()
}

fn parse_time(t: &serde_json::Value) -> Result<i64, String> {
    let f = t
        .as_f64()
        .ok_or_else(|| format!("timestamp {t} is not a number"))?;
    Ok((f * 1000.0).round() as i64)
}

fn parse_point(p: &serde_json::Value) -> Result<(i64, f64), String> {
    let a = p
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("sample {p} is not [time, value]"))?;
    let t = parse_time(&a[0])?;
    let s = a[1]
        .as_str()
        .ok_or_else(|| format!("sample value {} is not a string", a[1]))?;
    Ok((t, parse_value(s)?))
}

/// A sample value as the API writes it.
pub fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("bad sample value {s:?}")),
    }
}

/// Equal within a relative 1e-9, or an absolute 1e-12 near zero; NaN
/// equals NaN; infinities only equal themselves.
pub fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let d = (a - b).abs();
    d <= 1e-12 || d <= 1e-9 * a.abs().max(b.abs())
}

/// Whether the query's outermost call is `sort` or `sort_desc`: then the
/// order of an instant vector is part of the answer.
pub fn ordered_by_value(query: &str) -> bool {
    let mut q = query.trim();
    loop {
        if q.starts_with('(') && closing(q, 0) == Some(q.len() - 1) {
            q = q[1..q.len() - 1].trim();
            continue;
        }
        break;
    }
    for f in ["sort_desc", "sort"] {
        if let Some(rest) = q.strip_prefix(f) {
            let rest_trim = rest.trim_start();
            if rest_trim.starts_with('(') {
                let open = q.len() - rest_trim.len();
                return closing(q, open) == Some(q.len() - 1);
            }
        }
    }
    false
}

/// Index of the parenthesis closing the one at `open`, skipping strings.
fn closing(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A short name for the kind of disagreement, to count alike failures:
/// e.g. `skein: no valid answer (HTTP 404)`, `skein errors (execution)
/// where prometheus answers vector`, `values or series differ (matrix)`.
pub fn classify(reference: &Outcome, candidate: &Outcome, (rn, cn): (&str, &str)) -> String {
    fn invalid(name: &str, why: &str) -> String {
        let status = why
            .strip_prefix("HTTP ")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .map(|s| format!("HTTP {s}"))
            .unwrap_or_else(|| cut(why, 40));
        format!("{name}: no valid answer ({status})")
    }
    match (reference, candidate) {
        (Outcome::Invalid(why), _) => invalid(rn, why),
        (_, Outcome::Invalid(why)) => invalid(cn, why),
        (Outcome::Error { error_type: a, .. }, Outcome::Error { error_type: b, .. }) => {
            if a == b {
                format!("same error type ({a}), other HTTP status")
            } else {
                format!("{rn} errors ({a}), {cn} errors ({b})")
            }
        }
        (Outcome::Error { error_type, .. }, Outcome::Success { data, .. }) => {
            format!(
                "{rn} errors ({error_type}) where {cn} answers {}",
                data.kind()
            )
        }
        (Outcome::Success { data, .. }, Outcome::Error { error_type, .. }) => {
            format!(
                "{cn} errors ({error_type}) where {rn} answers {}",
                data.kind()
            )
        }
        (Outcome::Success { data: a, .. }, Outcome::Success { data: b, .. }) => {
            if a.kind() != b.kind() {
                format!("result type: {rn} {}, {cn} {}", a.kind(), b.kind())
            } else {
                format!("values or series differ ({})", a.kind())
            }
        }
    }
}

/// Differences between `reference` (Prometheus) and `candidate`, at most
/// `max` lines; empty when they agree. `ordered`: compare the order of
/// instant vectors by value.
pub fn compare(
    reference: &Outcome,
    candidate: &Outcome,
    ordered: bool,
    names: (&str, &str),
    max: usize,
) -> Vec<String> {
    let (rn, cn) = names;
    let mut out = Vec::new();
    match (reference, candidate) {
        (Outcome::Invalid(_), _) | (_, Outcome::Invalid(_)) => {
            out.push(format!("{rn}: {}", reference.summary()));
            out.push(format!("{cn}: {}", candidate.summary()));
        }
        (
            Outcome::Error {
                status: rs,
                error_type: rt,
                ..
            },
            Outcome::Error {
                status: cs,
                error_type: ct,
                ..
            },
        ) => {
            if rt != ct || rs != cs {
                out.push(format!("{rn}: {}", reference.summary()));
                out.push(format!("{cn}: {}", candidate.summary()));
            }
        }
        (Outcome::Error { .. }, _) | (_, Outcome::Error { .. }) => {
            out.push(format!("{rn}: {}", reference.summary()));
            out.push(format!("{cn}: {}", candidate.summary()));
        }
        (
            Outcome::Success {
                status: rs,
                data: rd,
            },
            Outcome::Success {
                status: cs,
                data: cd,
            },
        ) => {
            if rs != cs {
                out.push(format!("HTTP status: {rn} {rs}, {cn} {cs}"));
            }
            compare_data(rd, cd, ordered, names, max, &mut out);
        }
    }
    out.truncate(max);
    out
}

fn compare_data(
    r: &Data,
    c: &Data,
    ordered: bool,
    (rn, cn): (&str, &str),
    max: usize,
    out: &mut Vec<String>,
) {
    match (r, c) {
        (Data::Scalar(rt, rv), Data::Scalar(ct, cv)) => {
            if rt != ct || !same_value(*rv, *cv) {
                out.push(format!("{rn}: {}; {cn}: {}", r.summary(), c.summary()));
            }
        }
        (Data::String(rt, rv), Data::String(ct, cv)) => {
            if rt != ct || rv != cv {
                out.push(format!("{rn}: {}; {cn}: {}", r.summary(), c.summary()));
            }
        }
        (Data::Vector(rv), Data::Vector(cv)) => {
            let rm = index(rv.iter().map(|(l, t, v)| (l, vec![(*t, *v)])), rn, out);
            let cm = index(cv.iter().map(|(l, t, v)| (l, vec![(*t, *v)])), cn, out);
            compare_series(&rm, &cm, (rn, cn), max, out);
            if ordered && out.is_empty() {
                let rvals: Vec<f64> = rv.iter().map(|s| s.2).collect();
                let cvals: Vec<f64> = cv.iter().map(|s| s.2).collect();
                if let Some(i) = (0..rvals.len()).find(|&i| !same_value(rvals[i], cvals[i])) {
                    out.push(format!(
                        "order differs at position {i}: {rn} {} {}, {cn} {} {}",
                        fmt_labels(&rv[i].0),
                        fmt_f(rvals[i]),
                        fmt_labels(&cv[i].0),
                        fmt_f(cvals[i])
                    ));
                }
            }
        }
        (Data::Matrix(rm), Data::Matrix(cm)) => {
            let rm = index(rm.iter().map(|(l, p)| (l, p.clone())), rn, out);
            let cm = index(cm.iter().map(|(l, p)| (l, p.clone())), cn, out);
            compare_series(&rm, &cm, (rn, cn), max, out);
        }
        _ => out.push(format!(
            "result type: {rn} {}, {cn} {}",
            r.summary(),
            c.summary()
        )),
    }
}

type SeriesMap<'a> = BTreeMap<&'a Labels, Vec<(i64, f64)>>;

fn index<'a>(
    items: impl Iterator<Item = (&'a Labels, Vec<(i64, f64)>)>,
    side: &str,
    out: &mut Vec<String>,
) -> SeriesMap<'a> {
    let mut m = BTreeMap::new();
    for (l, p) in items {
        if m.insert(l, p).is_some() {
            out.push(format!("{side}: series {} appears twice", fmt_labels(l)));
        }
    }
    m
}

fn compare_series(
    r: &SeriesMap<'_>,
    c: &SeriesMap<'_>,
    (rn, cn): (&str, &str),
    max: usize,
    out: &mut Vec<String>,
) {
    let missing: Vec<_> = r.keys().filter(|l| !c.contains_key(*l)).collect();
    let extra: Vec<_> = c.keys().filter(|l| !r.contains_key(*l)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        out.push(format!(
            "series: {rn} {}, {cn} {}; {} only in {rn}, {} only in {cn}",
            r.len(),
            c.len(),
            missing.len(),
            extra.len()
        ));
        for l in missing.iter().take(2) {
            out.push(format!("  only in {rn}: {}", fmt_labels(l)));
        }
        for l in extra.iter().take(2) {
            out.push(format!("  only in {cn}: {}", fmt_labels(l)));
        }
    }
    let mut differing = 0;
    for (l, rp) in r {
        let Some(cp) = c.get(l) else { continue };
        if let Some(d) = first_point_difference(rp, cp, (rn, cn)) {
            differing += 1;
            if out.len() < max {
                out.push(format!("{}: {d}", fmt_labels(l)));
            }
        }
    }
    if differing > 1 {
        out.push(format!("{differing} common series differ"));
    }
}

fn first_point_difference(
    r: &[(i64, f64)],
    c: &[(i64, f64)],
    (rn, cn): (&str, &str),
) -> Option<String> {
    let (mut i, mut j) = (0, 0);
    let mut first: Option<String> = None;
    let mut count = 0;
    let mut note = |s: String| {
        count += 1;
        if first.is_none() {
            first = Some(s);
        }
    };
    while i < r.len() || j < c.len() {
        match (r.get(i), c.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if !same_value(a.1, b.1) {
                    note(format!(
                        "@{}: {rn} {}, {cn} {}",
                        fmt_t(a.0),
                        fmt_f(a.1),
                        fmt_f(b.1)
                    ));
                }
                i += 1;
                j += 1;
            }
            (Some(a), b) if b.is_none_or(|b| a.0 < b.0) => {
                note(format!("@{}: {rn} {}, {cn} none", fmt_t(a.0), fmt_f(a.1)));
                i += 1;
            }
            (_, Some(b)) => {
                note(format!("@{}: {rn} none, {cn} {}", fmt_t(b.0), fmt_f(b.1)));
                j += 1;
            }
            (None, None) => break,
            (Some(_), None) => unreachable!(),
        }
    }
    first.map(|f| {
        if count > 1 {
            format!("{f} (and {} more points differ)", count - 1)
        } else {
            f
        }
    })
}

pub fn fmt_labels(l: &Labels) -> String {
    let mut s = String::new();
    if let Some(n) = l.get("__name__") {
        s.push_str(n);
    }
    s.push('{');
    let mut first = true;
    for (k, v) in l {
        if k == "__name__" {
            continue;
        }
        if !first {
            s.push_str(", ");
        }
        first = false;
        let _ = write!(s, "{k}={v:?}");
    }
    s.push('}');
    s
}

/// A value for the report: exponent notation when very large or small.
pub fn fmt_f(v: f64) -> String {
    crate::openmetrics::format_value(v)
}

/// A timestamp relative to the start of the data, e.g. `T0+1h30m7.5s`.
pub fn fmt_t(ms: i64) -> String {
    let d = ms - T0;
    let sign = if d < 0 { '-' } else { '+' };
    let mut rest = d.unsigned_abs();
    let mut s = format!("T0{sign}");
    let days = rest / 86_400_000;
    rest %= 86_400_000;
    let (h, m) = (rest / 3_600_000, rest % 3_600_000 / 60_000);
    let ms_rest = rest % 60_000;
    if days > 0 {
        let _ = write!(s, "{days}d");
    }
    if h > 0 {
        let _ = write!(s, "{h}h");
    }
    if m > 0 {
        let _ = write!(s, "{m}m");
    }
    if ms_rest > 0 || rest == 0 && days == 0 {
        if ms_rest % 1000 == 0 {
            let _ = write!(s, "{}s", ms_rest / 1000);
        } else {
            let _ = write!(s, "{}.{:03}s", ms_rest / 1000, ms_rest % 1000);
            while s.ends_with("0s") {
                s.truncate(s.len() - 2);
                s.push('s');
            }
        }
    }
    s
}

/// Queries of a query file: one a line; blank lines and lines starting
/// with `#` are skipped.
pub fn parse_queries(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Outcome {
        parse_answer(200, body.as_bytes())
    }

    #[test]
    fn values() {
        assert!(same_value(f64::NAN, f64::NAN));
        assert!(!same_value(f64::NAN, 1.0));
        assert!(same_value(f64::INFINITY, f64::INFINITY));
        assert!(!same_value(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!same_value(f64::INFINITY, 1e308));
        assert!(same_value(1.0, 1.0 + 1e-12));
        assert!(!same_value(1.0, 1.0 + 1e-6));
        assert!(same_value(0.0, 1e-13));
        assert!(!same_value(0.0, 1e-11));
        assert!(same_value(1e20, 1e20 * (1.0 + 1e-10)));
        assert_eq!(parse_value("+Inf"), Ok(f64::INFINITY));
        assert!(parse_value("inf").is_err());
        assert_eq!(parse_value("1e+06"), Ok(1e6));
    }

    #[test]
    fn sort_detection() {
        assert!(ordered_by_value("sort(up)"));
        assert!(ordered_by_value(" ( sort_desc (rate(x[5m])) ) "));
        assert!(!ordered_by_value("sort(up) + 1"));
        assert!(!ordered_by_value("sort(up) + sort(up)"));
        assert!(!ordered_by_value("topk(3, up)"));
        assert!(!ordered_by_value("sum(sort(up))"));
        assert!(ordered_by_value(
            "sort(label_replace(up, \"a\", \")\", \"b\", \"(.*)\"))"
        ));
    }

    #[test]
    fn times() {
        assert_eq!(fmt_t(T0), "T0+0s");
        assert_eq!(fmt_t(T0 + 5_437_500), "T0+1h30m37.5s");
        assert_eq!(fmt_t(T0 - 3_600_000), "T0-1h");
        assert_eq!(fmt_t(T0 + 86_400_000 + 250), "T0+1d0.25s");
    }

    const VEC_A: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"up","job":"a"},"value":[1735689600.5,"1"]},
        {"metric":{"__name__":"up","job":"b"},"value":[1735689600.5,"NaN"]}]}}"#;

    #[test]
    fn vectors_agree_in_any_order_unless_sorted() {
        let a = ok(VEC_A);
        let b = ok(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"b","__name__":"up"},"value":[1735689600.5,"NaN"]},
            {"metric":{"__name__":"up","job":"a"},"value":[1735689600.500,"1.0000000000001"]}]}}"#,
        );
        assert!(compare(&a, &b, false, ("p", "s"), 10).is_empty());
        let d = compare(&a, &b, true, ("p", "s"), 10);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("order differs at position 0"), "{d:?}");
    }

    #[test]
    fn differences_are_reported() {
        let a = ok(VEC_A);
        // A value off, a timestamp off.
        let b = ok(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a"},"value":[1735689600.5,"2"]},
            {"metric":{"__name__":"up","job":"b"},"value":[1735689600.501,"NaN"]}]}}"#,
        );
        let d = compare(&a, &b, false, ("p", "s"), 10);
        assert!(d.iter().any(|l| l.contains("p 1, s 2")), "{d:?}");
        assert!(
            d.iter().any(|l| l.contains("2 common series differ")),
            "{d:?}"
        );
        // A missing series and a label difference.
        let c = ok(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1735689600.5,"1"]}]}}"#,
        );
        let d = compare(&a, &c, false, ("p", "s"), 10);
        assert!(d[0].contains("2 only in p, 1 only in s"), "{d:?}");
        // Another result type.
        let e = ok(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1735689600.5,"1"]}}"#,
        );
        let d = compare(&a, &e, false, ("p", "s"), 10);
        assert!(d[0].starts_with("result type"), "{d:?}");
        // An error against a success, and a 404 page.
        let f = parse_answer(
            422,
            br#"{"status":"error","errorType":"execution","error":"boom"}"#,
        );
        assert_eq!(compare(&a, &f, false, ("p", "s"), 10).len(), 2);
        let g = parse_answer(404, b"404 page not found");
        assert!(matches!(g, Outcome::Invalid(_)));
        assert_eq!(compare(&a, &g, false, ("p", "s"), 10).len(), 2);
        assert_eq!(
            classify(&a, &g, ("p", "s")),
            "s: no valid answer (HTTP 404)"
        );
        let h = parse_answer(404, b"");
        assert_eq!(h, Outcome::Invalid("HTTP 404, empty body".into()));
        assert_eq!(
            classify(&a, &f, ("p", "s")),
            "s errors (execution) where p answers vector"
        );
        assert_eq!(
            classify(&a, &b, ("p", "s")),
            "values or series differ (vector)"
        );
        assert!(compare(&a, &a, false, ("p", "s"), 10).is_empty());
    }

    #[test]
    fn errors_agree_by_type_and_status() {
        let a = parse_answer(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"x"}"#,
        );
        let b = parse_answer(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"y"}"#,
        );
        let c = parse_answer(
            422,
            br#"{"status":"error","errorType":"execution","error":"x"}"#,
        );
        assert!(compare(&a, &b, false, ("p", "s"), 10).is_empty());
        assert_eq!(compare(&a, &c, false, ("p", "s"), 10).len(), 2);
    }

    #[test]
    fn matrices_compare_point_by_point() {
        let a = ok(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"1"},"values":[[1735689600,"1"],[1735689660,"+Inf"],[1735689720,"3"]]}]}}"#,
        );
        let b = ok(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"1"},"values":[[1735689600,"1"],[1735689720,"3"],[1735689780,"4"]]}]}}"#,
        );
        let d = compare(&a, &b, false, ("p", "s"), 10);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("@T0+1m: p +Inf, s none (and 1 more points differ)"),
            "{d:?}"
        );
        assert!(compare(&a, &a, false, ("p", "s"), 10).is_empty());
    }

    #[test]
    fn query_files() {
        let q = parse_queries("# c\n\n up \nrate(x[5m])\n  # d\n");
        assert_eq!(q, vec!["up", "rate(x[5m])"]);
    }
}

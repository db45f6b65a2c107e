//! Request parameters as Prometheus reads them: the form (URL query and
//! urlencoded POST body), times, durations, booleans and series selectors.

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{self as promql_parser_api, Expr};

use crate::model::labels::METRIC_NAME;
pub use crate::model::time::{format_duration, parse_prom_duration, parse_rfc3339};
use crate::model::time::{MAX_TIME, MIN_TIME};
use crate::model::{MatchOp, Matcher};

/// Parameters of one request. POST body values come before URL values, so
/// the body wins where a parameter is read once, as in Go's `FormValue`.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// From the URL query and, when there is one, a urlencoded body.
    pub fn new(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut pairs = Vec::new();
        if let Some(body) = form_body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Self { pairs }
    }

    /// The first value of `name`, or "" when absent (Prometheus treats an
    /// empty value as absent).
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter such as `match[]`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Prometheus' bounds of time, formatted as it formats them; clients send
/// these strings to mean "no bound".
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// A timestamp in milliseconds from Unix seconds (with a fraction) or
/// RFC 3339, as Prometheus parses time parameters. The error reads
/// `cannot parse "x" to a valid timestamp`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {} to a valid timestamp", go_quote(s));
    if let Ok(t) = s.parse::<f64>() {
        // Go reads "NaN", "Inf" and out-of-range numbers here and turns
        // them into arbitrary times; they are refused instead.
        if !t.is_finite() || t.abs() >= (i64::MAX / 1000) as f64 {
            return Err(bad());
        }
        // As Prometheus: whole seconds, plus the fraction rounded to the
        // millisecond, then converted to nanoseconds and floored to the
        // millisecond again (which keeps its rare off-by-one).
        let whole = t.trunc();
        let frac = ((t - whole) * 1000.0).round() / 1000.0;
        let nanos = (frac * 1e9) as i64;
        return (whole as i64)
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(nanos.div_euclid(1_000_000)))
            .ok_or_else(bad);
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME),
        MAX_TIME_FORMATTED => Ok(MAX_TIME),
        _ => Err(bad()),
    }
}

/// A duration in nanoseconds (Go's `time.Duration`) from float seconds or
/// a Prometheus duration string (`1m30s`), as Prometheus parses `step` and
/// `timeout`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(d) = s.parse::<f64>() {
        let ns = d * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(s)
            ));
        }
        // Truncates toward zero (NaN becomes 0), like Go's conversion.
        return Ok(ns as i64);
    }
    parse_prom_duration(s)
        .ok_or_else(|| format!("cannot parse {} to a valid duration", go_quote(s)))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Prometheus' message when a `match[]` selects every series.
pub const EMPTY_MATCHERS: &str = "match[] must contain at least one non-empty matcher";

/// The matchers of one series selector (`up{job="a"}`, `{__name__=~"x.*"}`),
/// as `match[]` takes them: a bare selector, without range, offset or `@`,
/// with at least one matcher that does not match the empty string.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let expr = promql_parser_api::parse(s).map_err(|e| {
        if e.contains("at least one non-empty matcher") {
            EMPTY_MATCHERS.to_string()
        } else {
            format!("parse error: {e}")
        }
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "parse error: expected a series selector such as up{{job=\"x\"}}, got {}",
            go_quote(s)
        ));
    };
    if vs.offset.is_some() {
        return Err("parse error: unexpected <offset> in a series selector".into());
    }
    if vs.at.is_some() {
        return Err("parse error: unexpected <@> in a series selector".into());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("parse error: \"or\" between label matchers is not supported".into());
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = vs.name {
        out.push(Matcher::equal(METRIC_NAME, name));
    }
    for m in vs.matchers.matchers {
        let converted = match &m.op {
            ParserOp::Equal => Matcher::new(MatchOp::Equal, m.name, m.value),
            ParserOp::NotEqual => Matcher::new(MatchOp::NotEqual, m.name, m.value),
            ParserOp::Re(re) => regex_matcher(MatchOp::Regex, m.name, m.value, re.as_str()),
            ParserOp::NotRe(re) => regex_matcher(MatchOp::NotRegex, m.name, m.value, re.as_str()),
        };
        out.push(converted.map_err(|e| format!("parse error: {e}"))?);
    }
    if out.iter().all(Matcher::matches_empty) {
        return Err(EMPTY_MATCHERS.into());
    }
    Ok(out)
}

/// A regex matcher from its source text. Go's regexes read a `{` that
/// starts no repetition (`a{b}`) as a literal; the parser accepted such a
/// pattern by escaping it, so its escaped form is the fallback.
fn regex_matcher(
    op: MatchOp,
    name: String,
    value: String,
    anchored: &str,
) -> Result<Matcher, crate::model::MatcherError> {
    match Matcher::new(op, name.clone(), value) {
        Ok(m) => Ok(m),
        Err(e) => match anchored
            .strip_prefix("^(?:")
            .and_then(|r| r.strip_suffix(")$"))
        {
            Some(escaped) => Matcher::new(op, name, escaped).map_err(|_| e),
            None => Err(e),
        },
    }
}

pub use crate::model::matcher::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_body_first_then_query() {
        let p = Params::new(
            Some("match%5B%5D=up&time=1&x=%7Ba%3D%22b%22%7D"),
            Some(b"time=2&match[]=foo&match[]=bar+baz"),
        );
        assert_eq!(p.get("time"), "2");
        assert_eq!(
            p.all("match[]").collect::<Vec<_>>(),
            ["foo", "bar baz", "up"]
        );
        assert_eq!(p.get("x"), r#"{a="b"}"#);
        assert_eq!(p.get("absent"), "");
        assert_eq!(Params::new(None, None).all("match[]").count(), 0);
    }

    #[test]
    fn times_as_prometheus_reads_them() {
        let ok: &[(&str, i64)] = &[
            ("1700000000", 1_700_000_000_000),
            ("1700000000.123", 1_700_000_000_123),
            ("1700000000.5", 1_700_000_000_500),
            // Rounding at the millisecond, as a real Prometheus 2.42 does.
            ("1.0005", 1_000),
            ("1.0015", 1_002),
            ("1700000000.0005", 1_700_000_000_000),
            ("1700000000.0015", 1_700_000_000_001),
            ("1700000000.9995", 1_700_000_001_000),
            ("0.0005", 1),
            ("-0.0005", -1),
            ("-1.0005", -1_000),
            ("2.675", 2_675),
            ("1e-3", 1),
            ("2023-11-14T22:13:20.9999Z", 1_700_000_000_999),
            ("2023-11-14T22:13:20.0001-00:30", 1_700_001_800_000),
            ("-1.5", -1_500),
            ("0", 0),
            ("1e9", 1_000_000_000_000),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
            ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
            ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),
            ("2023-11-14T22:13:20.9999999999Z", 1_700_000_000_999),
            ("2023-11-14T22:13:20.5Z", 1_700_000_000_500),
            ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
            ("2023-11-14T20:43:20-01:30", 1_700_000_000_000),
            ("1969-12-31T23:59:59.5Z", -500),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1970-01-01T00:00:00Z", 0),
            (MIN_TIME_FORMATTED, MIN_TIME),
            (MAX_TIME_FORMATTED, MAX_TIME),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_time(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "x",
            "now",
            "0x10",
            "NaN",
            "Inf",
            "1e300",
            "9223372036854775.807",
            "-9223372036854775.808",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-11-14t22:13:20z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "23-11-14T22:13:20Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            parse_time("x").unwrap_err(),
            r#"cannot parse "x" to a valid timestamp"#
        );
    }

    #[test]
    fn durations_as_prometheus_reads_them() {
        const S: i64 = 1_000_000_000;
        let ok: &[(&str, i64)] = &[
            ("15", 15 * S),
            ("0.5", S / 2),
            ("1e-3", 1_000_000),
            ("-1", -S),
            ("0", 0),
            ("15s", 15 * S),
            ("1m30s", 90 * S),
            ("1h", 3600 * S),
            ("1d", 86_400 * S),
            ("1w", 7 * 86_400 * S),
            ("1y", 365 * 86_400 * S),
            ("100ms", 100_000_000),
            ("1h1m1s1ms", 3_661_001_000_000),
            ("2w3d", 17 * 86_400 * S),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in [
            "", "x", "s", "1x", "1s1m", "1m1m", "1.5s", "-1s", "1 s", "300y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            parse_duration("x").unwrap_err(),
            r#"cannot parse "x" to a valid duration"#
        );
        assert_eq!(
            parse_duration("1e300").unwrap_err(),
            r#"cannot parse "1e300" to a valid duration. It overflows int64"#
        );
        assert_eq!(parse_prom_duration("5m"), Some(300 * S));
        assert_eq!(parse_prom_duration("0ms"), Some(0));
        assert_eq!(parse_prom_duration(""), None);
    }

    #[test]
    fn formatted_durations() {
        for (ms, want) in [
            (0, "0s"),
            (300_000, "5m"),
            (120_000, "2m"),
            (5_400_000, "1h30m"),
            (1_500, "1s500ms"),
            (90 * 86_400_000, "90d"),
            (14 * 86_400_000, "2w"),
            (365 * 86_400_000, "1y"),
        ] {
            assert_eq!(format_duration(ms), want);
            if ms > 0 {
                assert_eq!(parse_prom_duration(want), Some(ms * 1_000_000), "{want}");
            }
        }
    }

    #[test]
    fn booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["", "yes", "tRuE", "2"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    fn sel(s: &str) -> Vec<String> {
        parse_selector(s)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn selectors() {
        assert_eq!(sel("up"), [r#"__name__="up""#]);
        assert_eq!(
            sel(r#"up{job="a",code!="200"}"#),
            [r#"__name__="up""#, r#"job="a""#, r#"code!="200""#]
        );
        assert_eq!(sel(r#"{__name__=~"x.+"}"#), [r#"__name__=~"x.+""#]);
        assert_eq!(sel(r#"{"some.metric"}"#), [r#"__name__="some.metric""#]);
        assert_eq!(sel(r#"{a=~"x\\.y"}"#), [r#"a=~"x\\.y""#]);
        assert_eq!(sel(r#"{a="", b=~"z"}"#), [r#"a="""#, r#"b=~"z""#]);
        // Go reads a brace that starts no repetition as a literal.
        let m = parse_selector(r#"{a=~"x{y}"}"#).unwrap();
        assert!(m[0].matches("x{y}") && !m[0].matches("xy"));

        for (bad, want) in [
            ("{}", EMPTY_MATCHERS),
            (r#"{a=""}"#, EMPTY_MATCHERS),
            (r#"{a=~".*"}"#, EMPTY_MATCHERS),
            (r#"{a=~".*", b!="x"}"#, EMPTY_MATCHERS),
            ("up{", "parse error"),
            ("rate(up[5m])", "expected a series selector"),
            ("up[5m]", "expected a series selector"),
            ("1", "expected a series selector"),
            ("up offset 5m", "<offset>"),
            ("up @ 10", "<@>"),
            (r#"{a="b" or c="d"}"#, "\"or\""),
            (r#"{a=~"("}"#, "parse error"),
            ("", "parse error"),
        ] {
            let err = parse_selector(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("x"), r#""x""#);
        assert_eq!(go_quote(r#"a"b\"#), r#""a\"b\\""#);
        assert_eq!(go_quote("a\nb\u{1}"), r#""a\nb\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }
}

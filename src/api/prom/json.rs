//! JSON of the Prometheus HTTP API, written straight into a byte buffer:
//! no intermediate tree, no allocation per sample.
//!
//! The bytes follow what Prometheus 2.42 sends, checked against a real
//! 2.42 server, because clients and byte-for-byte comparisons notice:
//!
//! - Samples of vectors and matrices: the value is Go's shortest
//!   representation, in plain notation (`'f'`) except below 1e-6 and from
//!   1e21 up, where it is in exponent notation (`'e'`: `"1e-07"`,
//!   `"1e+21"`); the timestamp is whole seconds plus, when not zero, the
//!   milliseconds as exactly three digits (`1700000000.500`).
//! - Scalars and strings: the value is always in plain notation
//!   (`"0.0000001"`); the timestamp is the float `t / 1000` in its shortest
//!   form (`1700000000.5`).
//! - Strings are escaped like Go's `encoding/json`, which also escapes
//!   `<`, `>`, `&`, U+2028 and U+2029.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::model::Labels;
use crate::promql::Value;

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits that
/// read back as `v`, never in exponent notation; `NaN`, `+Inf`, `-Inf`;
/// negative zero is `-0`.
pub fn write_float_plain(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        // Rust's `Display` for floats is the shortest round-trip form
        // without an exponent, as Go's 'f' with precision -1. Writing into
        // a Vec cannot fail.
        let _ = write!(out, "{v}");
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest digits, one before
/// the point, and an exponent with a sign and at least two digits
/// (`1e+21`, `1.5e-07`, `5e-324`).
pub fn write_float_exp(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        return write_float_plain(out, v);
    }
    let mut buf = StackBuf::new();
    // Rust writes `1e21`, `1.5e-7`: same digits, other exponent style.
    let _ = write!(buf, "{v:e}");
    let s = buf.as_bytes();
    let Some(e) = s.iter().position(|&b| b == b'e') else {
        out.extend_from_slice(s);
        return;
    };
    out.extend_from_slice(&s[..=e]);
    let exp = &s[e + 1..];
    let (sign, digits) = match exp.split_first() {
        Some((b'-', rest)) => (b'-', rest),
        _ => (b'+', exp),
    };
    out.push(sign);
    if digits.len() < 2 {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// A sample value as Prometheus writes it in vectors and matrices, quoted.
pub fn write_sample_value(out: &mut Vec<u8>, v: f64) {
    out.push(b'"');
    let abs = v.abs();
    // NaN falls in the first branch too, and prints the same either way.
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        write_float_exp(out, v);
    } else {
        write_float_plain(out, v);
    }
    out.push(b'"');
}

/// A sample timestamp as Prometheus writes it in vectors and matrices:
/// seconds, and `.mmm` when the milliseconds are not zero.
pub fn write_sample_time(out: &mut Vec<u8>, t_ms: i64) {
    if t_ms < 0 {
        out.push(b'-');
    }
    let t = t_ms.unsigned_abs();
    let _ = write!(out, "{}", t / 1000);
    let ms = t % 1000;
    if ms != 0 {
        let _ = write!(out, ".{ms:03}");
    }
}

/// A scalar's or string's timestamp: the float `t / 1000` as Go's
/// `encoding/json` writes it (shortest, plain notation for every time a
/// millisecond timestamp can hold).
pub fn write_scalar_time(out: &mut Vec<u8>, t_ms: i64) {
    write_float_plain(out, t_ms as f64 / 1000.0);
}

/// A JSON string, escaped as Go's `encoding/json` escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            // The rest of the control characters and HTML's specials go out
            // as \u00XX below.
            0..=0x1f | b'<' | b'>' | b'&' => Some(b""),
            // U+2028 and U+2029 (E2 80 A8/A9): line breaks to JavaScript.
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                continue;
            }
            _ => None,
        };
        if let Some(esc) = escape {
            out.extend_from_slice(&bytes[start..i]);
            if esc.is_empty() {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(esc);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A label set as a JSON object, names in order.
pub fn write_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &l.name);
        out.push(b':');
        write_str(out, &l.value);
    }
    out.push(b'}');
}

/// A JSON array of strings.
pub fn write_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// A JSON object of string values.
pub fn write_str_object<'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    out.push(b'{');
    for (i, (k, v)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

/// `{"status":"success","data":` in a buffer of `capacity` bytes; the
/// caller writes the data and then calls [`end_success`].
pub fn begin_success(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(64));
    out.extend_from_slice(br#"{"status":"success","data":"#);
    out
}

/// Closes a success envelope, with `warnings` when there are any.
pub fn end_success(out: &mut Vec<u8>, warnings: &[String]) {
    if !warnings.is_empty() {
        out.extend_from_slice(br#","warnings":"#);
        write_str_array(out, warnings.iter().map(String::as_str));
    }
    out.push(b'}');
}

/// A whole error envelope.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    out.extend_from_slice(br#"{"status":"error","errorType":"#);
    write_str(&mut out, error_type);
    out.extend_from_slice(br#","error":"#);
    write_str(&mut out, message);
    out.push(b'}');
    out
}

/// A rough size of a value's JSON, to allocate the buffer once.
pub fn size_hint(v: &Value) -> usize {
    fn labels(l: &Labels) -> usize {
        16 + l
            .iter()
            .map(|l| l.name.len() + l.value.len() + 6)
            .sum::<usize>()
    }
    64 + match v {
        Value::Scalar { .. } => 48,
        Value::String { v, .. } => 32 + v.len(),
        Value::Vector(s) => s.iter().map(|s| labels(&s.labels) + 48).sum(),
        Value::Matrix(s) => s
            .iter()
            .map(|s| labels(&s.labels) + 16 + 32 * s.points.len())
            .sum(),
    }
}

/// `{"resultType":...,"result":...}` of a query.
pub fn write_query_data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(br#"{"resultType":""#);
    out.extend_from_slice(v.result_type().as_bytes());
    out.extend_from_slice(br#"","result":"#);
    match v {
        Value::Scalar { t_ms, v } => {
            out.push(b'[');
            write_scalar_time(out, *t_ms);
            out.extend_from_slice(b",\"");
            write_float_plain(out, *v);
            out.extend_from_slice(b"\"]");
        }
        Value::String { t_ms, v } => {
            out.push(b'[');
            write_scalar_time(out, *t_ms);
            out.push(b',');
            write_str(out, v);
            out.push(b']');
        }
        Value::Vector(samples) => {
            out.push(b'[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                write_labels(out, &s.labels);
                out.extend_from_slice(br#","value":["#);
                write_sample_time(out, s.t_ms);
                out.push(b',');
                write_sample_value(out, s.v);
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
        Value::Matrix(series) => {
            out.push(b'[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                write_labels(out, &s.labels);
                out.extend_from_slice(br#","values":["#);
                for (j, &(t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    write_sample_time(out, t);
                    out.push(b',');
                    write_sample_value(out, v);
                    out.push(b']');
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// A small buffer on the stack for one formatted float.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{RangeSeries, VectorSample};

    fn plain(v: f64) -> String {
        let mut out = Vec::new();
        write_float_plain(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn exp(v: f64) -> String {
        let mut out = Vec::new();
        write_float_exp(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn sample(v: f64) -> String {
        let mut out = Vec::new();
        write_sample_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_floats_are_gos_f_minus_one() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (100.0, "100"),
            (-42.5, "-42.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000"),
            (1e21, "1000000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "0.0000001"),
            (1.5e-7, "0.00000015"),
            (2.5e-5, "0.000025"),
            (1700000000.123, "1700000000.123"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for &(v, want) in cases {
            assert_eq!(plain(v), want, "{v:e}");
        }
        let max = plain(f64::MAX);
        assert!(
            max.starts_with("17976931348623157") && max.len() == 309,
            "{max}"
        );
        assert!(max.bytes().skip(17).all(|b| b == b'0'));
        let min = plain(5e-324);
        assert_eq!(min.len(), 326, "{min}");
        assert!(min.starts_with("0.000") && min.ends_with("005"));
    }

    #[test]
    fn exponent_floats_are_gos_e_minus_one() {
        let cases: &[(f64, &str)] = &[
            (1e21, "1e+21"),
            (1e-7, "1e-07"),
            (-1.5e-7, "-1.5e-07"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1.0, "1e+00"),
            (123456.0, "1.23456e+05"),
            (0.1 + 0.2, "3.0000000000000004e-01"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for &(v, want) in cases {
            assert_eq!(exp(v), want, "{v:e}");
        }
    }

    #[test]
    fn sample_values_switch_notation_like_prometheus() {
        // As a real Prometheus 2.42 answers `vector(...)`.
        let cases: &[(f64, &str)] = &[
            (1e21, r#""1e+21""#),
            (9.99e20, r#""999000000000000000000""#),
            (1e-7, r#""1e-07""#),
            (1e-6, r#""0.000001""#),
            (5e-7, r#""5e-07""#),
            (5e-324, r#""5e-324""#),
            (f64::MAX, r#""1.7976931348623157e+308""#),
            (123456789012345680000.0, r#""123456789012345680000""#),
            (0.0, r#""0""#),
            (-0.0, r#""-0""#),
            (0.1 + 0.2, r#""0.30000000000000004""#),
            (f64::NAN, r#""NaN""#),
            (f64::INFINITY, r#""+Inf""#),
            (f64::NEG_INFINITY, r#""-Inf""#),
        ];
        for &(v, want) in cases {
            assert_eq!(sample(v), want, "{v:e}");
        }
    }

    #[test]
    fn timestamps() {
        let t = |ms| s(|o| write_sample_time(o, ms));
        assert_eq!(t(1_700_000_000_000), "1700000000");
        assert_eq!(t(1_700_000_000_500), "1700000000.500");
        assert_eq!(t(1_700_000_000_050), "1700000000.050");
        assert_eq!(t(1_700_000_000_005), "1700000000.005");
        assert_eq!(t(-500), "-0.500");
        assert_eq!(t(-1_500), "-1.500");
        assert_eq!(t(0), "0");
        assert_eq!(t(i64::MIN), "-9223372036854775.808");
        let st = |ms| s(|o| write_scalar_time(o, ms));
        assert_eq!(st(1_700_000_000_500), "1700000000.5");
        assert_eq!(st(1_700_000_000_050), "1700000000.05");
        assert_eq!(st(1_700_000_000_123), "1700000000.123");
        assert_eq!(st(-1_500), "-1.5");
        assert_eq!(st(100_000), "100");
        assert_eq!(st(0), "0");
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let e = |x: &str| s(|o| write_str(o, x));
        assert_eq!(e("plain"), r#""plain""#);
        assert_eq!(e(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(e("a\nb\tc\r"), r#""a\nb\tc\r""#);
        assert_eq!(e("\u{1}\u{8}\u{c}\u{1f}"), r#""\u0001\u0008\u000c\u001f""#);
        assert_eq!(
            e("x > 0 && y < 1"),
            r#""x \u003e 0 \u0026\u0026 y \u003c 1""#
        );
        assert_eq!(
            e("\u{2028}|\u{2029}|\u{2027}"),
            "\"\\u2028|\\u2029|\u{2027}\""
        );
        assert_eq!(e("héllo ✓ 🦀"), "\"héllo ✓ 🦀\"");
        assert_eq!(e(""), r#""""#);
    }

    #[test]
    fn query_data_shapes() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]).unwrap();
        let v = Value::Vector(vec![VectorSample {
            labels: labels.clone(),
            t_ms: 1_700_000_000_500,
            v: 1e21,
        }]);
        assert_eq!(
            s(|o| write_query_data(o, &v)),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.500,"1e+21"]}]}"#
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: vec![(1_700_000_000_000, 5e-7), (1_700_000_000_100, 1.5)],
        }]);
        assert_eq!(
            s(|o| write_query_data(o, &m)),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"5e-07"],[1700000000.100,"1.5"]]}]}"#
        );
        let sc = Value::Scalar {
            t_ms: 1_700_000_000_050,
            v: 1e-7,
        };
        assert_eq!(
            s(|o| write_query_data(o, &sc)),
            r#"{"resultType":"scalar","result":[1700000000.05,"0.0000001"]}"#
        );
        let st = Value::String {
            t_ms: 100_000,
            v: "a<b".into(),
        };
        assert_eq!(
            s(|o| write_query_data(o, &st)),
            r#"{"resultType":"string","result":[100,"a\u003cb"]}"#
        );
        assert_eq!(
            s(|o| write_query_data(o, &Value::Vector(vec![]))),
            r#"{"resultType":"vector","result":[]}"#
        );
        assert!(size_hint(&m) > 64);
    }

    #[test]
    fn envelopes() {
        let mut out = begin_success(0);
        out.extend_from_slice(b"[]");
        end_success(&mut out, &[]);
        assert_eq!(out, br#"{"status":"success","data":[]}"#);
        let mut out = begin_success(0);
        out.extend_from_slice(b"[]");
        end_success(&mut out, &["store a: down".into()]);
        assert_eq!(
            out,
            br#"{"status":"success","data":[],"warnings":["store a: down"]}"#
        );
        assert_eq!(
            error_body("bad_data", r#"invalid parameter "time""#),
            br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\""}"#
        );
    }
}

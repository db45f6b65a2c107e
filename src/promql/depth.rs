//! A bound on how deeply a query's syntax tree can nest, read from its text
//! before the parser sees it.
//!
//! Parsing, checking, planning and evaluating all walk the tree by
//! recursion, so a tree thousands of levels deep (100 KB of parentheses, or
//! `1+1+1+…` with tens of thousands of terms) would overflow a thread's
//! stack and end the process. Every node that has a child either opens a
//! bracket (`(`, `[`, `{`) around it or is an operator, so along any path
//! from the root the number of nodes is at most the deepest bracket nesting
//! plus the number of operators plus one. That bound is computed in one pass
//! over the bytes, skipping strings, comments and label matchers.

/// The most nested nodes a query may have (by the bound above).
pub const MAX_DEPTH: usize = 1000;

/// Parses PromQL text into its syntax tree, safely for any input: text that
/// could nest deeper than [`MAX_DEPTH`] is refused before the parser sees
/// it, and a panic of the parser (it has some, e.g. on `offset NaN`) is an
/// error. Errors are the parser's message, without a prefix.
pub fn parse_expr(query: &str) -> Result<promql_parser::parser::Expr, String> {
    let bound = depth_bound(query);
    if bound > MAX_DEPTH {
        return Err(format!(
            "query nests too deeply: up to {bound} levels of brackets and operators, the limit is {MAX_DEPTH}"
        ));
    }
    check_number_durations(query)?;
    match std::panic::catch_unwind(|| promql_parser::parser::parse(query)) {
        Ok(parsed) => parsed,
        Err(p) => Err(p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unreadable query".into())),
    }
}

/// An upper bound on the depth of the syntax tree `query` parses to.
pub fn depth_bound(query: &str) -> usize {
    let b = query.as_bytes();
    let (mut i, mut nesting, mut deepest, mut operators) = (0, 0usize, 0usize, 0usize);
    let mut in_braces = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                nesting += 1;
                deepest = deepest.max(nesting);
                in_braces |= c == b'{';
            }
            b')' | b']' | b'}' => {
                nesting = nesting.saturating_sub(1);
                if c == b'}' {
                    in_braces = false;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' if !in_braces => {
                operators += 1
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                if !in_braces
                    && ["and", "or", "unless", "atan2"]
                        .iter()
                        .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operators += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    deepest.saturating_add(operators).saturating_add(1)
}

/// The parser reads a plain number where a duration goes (`x[300]`,
/// `offset 60`) as seconds, and panics on one that is no duration (`NaN`,
/// `Inf`, `1e400`). Such numbers are refused here: after `[`, after `:`
/// inside brackets, and after `offset` (and its `-`).
fn check_number_durations(query: &str) -> Result<(), String> {
    let b = query.as_bytes();
    let (mut i, mut brackets) = (0, 0usize);
    let mut duration_next = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                duration_next = false;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' => {
                brackets += 1;
                duration_next = true;
            }
            b']' => {
                brackets = brackets.saturating_sub(1);
                duration_next = false;
            }
            b':' if brackets > 0 => duration_next = true,
            b'-' if duration_next => {}
            _ if c.is_ascii_whitespace() => {}
            _ if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => {
                let start = i;
                while i < b.len() {
                    let x = b[i];
                    let exponent_sign = (x == b'+' || x == b'-')
                        && matches!(b[i - 1], b'e' | b'E')
                        && b[start].is_ascii_digit();
                    if x.is_ascii_alphanumeric()
                        || x == b'_'
                        || x == b'.'
                        || x == b':'
                        || exponent_sign
                    {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let word = &query[start..i];
                if duration_next {
                    check_duration_number(word)?;
                }
                duration_next = word.eq_ignore_ascii_case("offset");
                continue;
            }
            _ => duration_next = false,
        }
        i += 1;
    }
    Ok(())
}

/// A word in a duration's place: a duration literal (`5m`), or a number of
/// seconds the parser can turn into one.
fn check_duration_number(word: &str) -> Result<(), String> {
    let number = if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok().map(|n| n as f64)
    } else {
        word.parse::<f64>().ok()
    };
    match number {
        Some(n) if !(0.0..1.8e19).contains(&n) => Err(format!(
            "bad duration {word:?}: a number of seconds must be finite and not negative"
        )),
        _ => Ok(()),
    }
}

/// The index just past the string literal that starts at `start`.
fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real depth of a parsed tree, for comparison with the bound.
    fn depth(e: &promql_parser::parser::Expr) -> usize {
        use promql_parser::parser::Expr;
        1 + match e {
            Expr::Aggregate(a) => depth(&a.expr).max(a.param.as_deref().map_or(0, depth)),
            Expr::Unary(u) => depth(&u.expr),
            Expr::Binary(b) => depth(&b.lhs).max(depth(&b.rhs)),
            Expr::Paren(p) => depth(&p.expr),
            Expr::Subquery(s) => depth(&s.expr),
            Expr::Call(c) => c.args.args.iter().map(|a| depth(a)).max().unwrap_or(0),
            Expr::MatrixSelector(_)
            | Expr::VectorSelector(_)
            | Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::Extension(_) => 0,
        }
    }

    #[test]
    fn the_bound_is_never_below_the_real_depth() {
        for q in [
            "1",
            "-1",
            "- -1",
            "up",
            "(((up)))",
            "1 + 2 * 3 ^ 4 - 5 / 6 % 7",
            "a and b or c unless d",
            "atan2(a, b) > bool 0.5",
            "sum by (job) (rate(http_requests_total{code=~\"5..\", job!=\"a\"}[5m]))",
            "max_over_time(rate(x[1m])[10m:30s] offset -5m)",
            "histogram_quantile(0.9, sum by (le) (rate(b[5m]))) >= on() group_left vector(1)",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
            "abs(abs(abs(-vector(time()))))",
            "up # a comment with ( and +\n + 1",
            "`raw(string` == 'x' + \"y\\\")\"",
            "-(-(-(-(1))))",
            "count_values(\"v\", up) > topk(3, up) and bottomk(2, -up)",
        ] {
            let Ok(e) = promql_parser::parser::parse(q) else {
                continue;
            };
            let (bound, real) = (depth_bound(q), depth(&e));
            assert!(bound >= real, "{q}: bound {bound} below depth {real}");
        }
    }

    #[test]
    fn matchers_and_strings_do_not_count() {
        let regex = format!("{{job=~\"{}\"}}", "a|b-c+d*".repeat(2_000));
        assert_eq!(depth_bound(&regex), 2);
        assert_eq!(depth_bound("up{a=\"(((\", b!~\"+\"}"), 2);
    }

    #[test]
    fn numbers_that_are_no_duration_are_refused_before_parsing() {
        for q in [
            "x[10m] offset NaN",
            "x offset -Inf",
            "x[1e400]",
            "rate(x[NaN])",
            "max_over_time(x[5m:inf])",
            "x[0x1p3]",
        ] {
            // Each of these once made the parser panic, or would.
            let r = parse_expr(q);
            assert!(r.is_err(), "{q}: {r:?}");
        }
        for q in [
            "x[5m]",
            "x[300]",
            "x offset 60",
            "x offset -1m",
            "max_over_time(x[5m:30s])",
            "job:rate5m[1m]",
            "x[1e3]",
            "x{a=\"[NaN]\"}",
            "x[5m] @ 1e9",
        ] {
            assert!(parse_expr(q).is_ok(), "{q}: {:?}", parse_expr(q));
        }
    }

    #[test]
    fn deep_text_has_a_deep_bound() {
        let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
        assert_eq!(depth_bound(&parens), 50_001);
        assert_eq!(depth_bound(&format!("1{}", "+1".repeat(50_000))), 50_001);
    }
}

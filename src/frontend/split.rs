//! Splitting a range query into sub-queries by time: pieces at multiples
//! of the split interval (UTC), each asking exactly the original query's
//! steps that fall in it, so that putting the pieces' answers together
//! gives the unsplit answer. PromQL evaluates each step on its own (a
//! subquery's inner steps are aligned to absolute time, offsets shift each
//! step alike); only `@ start()` and `@ end()` look at the whole query's
//! range, and such queries are not split.

use promql_parser::parser::{self, AtModifier, Expr};

/// One piece: the steps from `start` to `end` (both on the query's grid),
/// within the split window that begins at `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub window: i64,
    pub start: i64,
    pub end: i64,
}

/// The pieces of `[start, end]` at `step` (ms, > 0) split every `interval`
/// ms (0: one piece), with extra cuts at `cuts` (e.g. the freshness limit:
/// the steps after it in a piece of their own). Pieces without a step are
/// left out.
pub fn pieces(start: i64, end: i64, step: i64, interval: i64, cuts: &[i64]) -> Vec<Piece> {
    let mut out = Vec::new();
    if step <= 0 || end < start {
        return out;
    }
    // Window boundaries after `start`, then the extra cuts, in order.
    let mut bounds: Vec<(i64, i64)> = Vec::new(); // (boundary, window it opens)
    if interval > 0 {
        let mut b = start
            .div_euclid(interval)
            .saturating_add(1)
            .saturating_mul(interval);
        while b <= end {
            bounds.push((b, b));
            b = b.saturating_add(interval);
        }
    }
    for &c in cuts {
        if c > start && c <= end {
            let w = if interval > 0 {
                c.div_euclid(interval) * interval
            } else {
                0
            };
            bounds.push((c, w));
        }
    }
    bounds.sort_unstable();
    bounds.dedup_by_key(|b| b.0);
    let first_window = if interval > 0 {
        start.div_euclid(interval) * interval
    } else {
        0
    };
    let mut lo = start;
    let mut window = first_window;
    for (b, w) in bounds
        .into_iter()
        .chain(std::iter::once((end.saturating_add(1), 0)))
    {
        // Steps t = start + k * step with lo <= t < b.
        let first = grid_at_or_after(start, step, lo);
        let last = grid_before(start, step, b);
        if let (Some(first), Some(last)) = (first, last) {
            if first <= last && last <= end {
                out.push(Piece {
                    window,
                    start: first,
                    end: last,
                });
            }
        }
        lo = b;
        window = w;
    }
    out
}

/// The first step of the grid `start + k * step` at or after `t`.
fn grid_at_or_after(start: i64, step: i64, t: i64) -> Option<i64> {
    if t <= start {
        return Some(start);
    }
    let k = (t - start + step - 1) / step;
    start.checked_add(k.checked_mul(step)?)
}

/// The last step of the grid strictly before `t`.
fn grid_before(start: i64, step: i64, t: i64) -> Option<i64> {
    if t <= start {
        return None;
    }
    let k = (t - 1 - start) / step;
    start.checked_add(k.checked_mul(step)?)
}

/// Whether a query may be split and cached: it parses, and no `@` in it
/// refers to the query's own start or end.
pub fn splittable(query: &str) -> bool {
    match parser::parse(query) {
        Ok(e) => splittable_expr(&e),
        Err(_) => false,
    }
}

/// [`splittable`] of a parsed query.
pub fn splittable_expr(e: &Expr) -> bool {
    !uses_range_bounds(e)
}

fn uses_range_bounds(e: &Expr) -> bool {
    let at = |a: &Option<AtModifier>| matches!(a, Some(AtModifier::Start) | Some(AtModifier::End));
    match e {
        Expr::Aggregate(a) => {
            uses_range_bounds(&a.expr) || a.param.as_deref().is_some_and(uses_range_bounds)
        }
        Expr::Unary(u) => uses_range_bounds(&u.expr),
        Expr::Binary(b) => uses_range_bounds(&b.lhs) || uses_range_bounds(&b.rhs),
        Expr::Paren(p) => uses_range_bounds(&p.expr),
        Expr::Subquery(s) => at(&s.at) || uses_range_bounds(&s.expr),
        Expr::VectorSelector(v) => at(&v.at),
        Expr::MatrixSelector(m) => at(&m.vs.at),
        Expr::Call(c) => c.args.args.iter().any(|a| uses_range_bounds(a)),
        Expr::Extension(_) => true,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// Every step of the unsplit query, exactly once, in order.
    fn steps(ps: &[Piece], step: i64) -> Vec<i64> {
        ps.iter()
            .flat_map(|p| (0..=(p.end - p.start) / step).map(move |k| p.start + k * step))
            .collect()
    }

    #[test]
    fn pieces_hold_every_step_once() {
        for (start, end, step, interval) in [
            (0, 10 * H, 60_000, 3 * H),
            (17_000, 10 * H + 5, 37_000, 2 * H),
            (5 * H, 5 * H, 1000, H),
            (-3 * H - 7, 2 * H, 7 * 60_000 + 3, H),
            (0, 24 * H, 15_000, 0),
        ] {
            let ps = pieces(start, end, step, interval, &[4 * H + 1]);
            let want: Vec<i64> = (0..=(end - start) / step)
                .map(|k| start + k * step)
                .collect();
            assert_eq!(steps(&ps, step), want, "{start} {end} {step} {interval}");
            for p in &ps {
                if interval > 0 {
                    assert!(p.start >= p.window && p.end < p.window + interval, "{p:?}");
                }
            }
        }
    }

    #[test]
    fn cuts_start_a_piece_of_their_own() {
        let ps = pieces(0, 3 * H, 60_000, 24 * H, &[2 * H]);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].end, 2 * H - 60_000);
        assert_eq!(ps[1].start, 2 * H);
    }

    #[test]
    fn queries_on_their_own_range_are_not_split() {
        assert!(splittable("rate(x[5m] @ 1700000000)"));
        assert!(splittable(
            "max_over_time(sum(rate(x[1m]))[1h:1m] offset 5m)"
        ));
        assert!(!splittable("x @ start()"));
        assert!(!splittable("sum(rate(x[5m] @ end()))"));
        assert!(!splittable("max_over_time(x[1h:] @ end())"));
        assert!(!splittable("sum("));
    }
}

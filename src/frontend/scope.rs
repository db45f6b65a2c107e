//! What data a cached answer depends on, so that a change in the cluster's
//! data drops exactly the answers it can alter: the matchers of each of
//! the query's selectors, and how far around a step a step reads (ranges,
//! offsets, subqueries and the lookback). A query with an `@` reads fixed
//! times, so any change it can match alters it.

use promql_parser::parser::{Expr, Offset};

use crate::model::{Labels, Matcher};
use crate::query::topology::labels_compatible;

#[derive(Debug, Clone, Default)]
pub struct Scope {
    selectors: Vec<Vec<Matcher>>,
    /// How far before a step its answer may read.
    before_ms: i64,
    /// How far after (negative offsets).
    after_ms: i64,
    /// Reads fixed times (`@`): every step may read anything.
    timeless: bool,
}

impl Scope {
    /// The scope of a parsed query; `lookback_ms` is the queriers'
    /// lookback delta. None when a selector cannot be turned into matchers
    /// (such a query is not cached).
    pub fn of(expr: &Expr, lookback_ms: i64) -> Option<Self> {
        let mut s = Scope::default();
        walk(expr, &mut s)?;
        s.before_ms = s.before_ms.saturating_add(lookback_ms);
        Some(s)
    }

    /// Whether data of a store with external label sets `sets` that
    /// changed between `min` and `max` can alter steps `start..=end`.
    pub fn affected(&self, sets: &[Labels], min: i64, max: i64, start: i64, end: i64) -> bool {
        if !self.selectors.iter().any(|m| labels_compatible(m, sets)) {
            return false;
        }
        self.timeless
            || (min <= end.saturating_add(self.after_ms)
                && max >= start.saturating_sub(self.before_ms))
    }
}

fn offset(o: &Option<Offset>, s: &mut Scope) {
    match o {
        Some(Offset::Pos(d)) => s.before_ms = s.before_ms.saturating_add(d.as_millis() as i64),
        Some(Offset::Neg(d)) => s.after_ms = s.after_ms.saturating_add(d.as_millis() as i64),
        None => {}
    }
}

/// Adds up every range and offset on the way (more than any one path
/// needs: an answer is dropped too often, never kept wrongly).
fn walk(e: &Expr, s: &mut Scope) -> Option<()> {
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, s)?;
            if let Some(p) = &a.param {
                walk(p, s)?;
            }
        }
        Expr::Unary(u) => walk(&u.expr, s)?,
        Expr::Binary(b) => {
            walk(&b.lhs, s)?;
            walk(&b.rhs, s)?;
        }
        Expr::Paren(p) => walk(&p.expr, s)?,
        Expr::Subquery(q) => {
            s.before_ms = s.before_ms.saturating_add(q.range.as_millis() as i64);
            offset(&q.offset, s);
            s.timeless |= q.at.is_some();
            walk(&q.expr, s)?;
        }
        Expr::VectorSelector(v) => {
            offset(&v.offset, s);
            s.timeless |= v.at.is_some();
            s.selectors.push(crate::promql::selector_matchers(v).ok()?);
        }
        Expr::MatrixSelector(m) => {
            s.before_ms = s.before_ms.saturating_add(m.range.as_millis() as i64);
            offset(&m.vs.offset, s);
            s.timeless |= m.vs.at.is_some();
            s.selectors
                .push(crate::promql::selector_matchers(&m.vs).ok()?);
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, s)?;
            }
        }
        Expr::Extension(_) => return None,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn scope(q: &str) -> Scope {
        Scope::of(&promql_parser::parser::parse(q).unwrap(), 5 * M).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> Vec<Labels> {
        vec![Labels::from_pairs(pairs.iter().copied()).unwrap()]
    }

    #[test]
    fn changes_alter_answers_they_can_match_in_time() {
        let s = scope(r#"sum(rate(x{region="eu"}[10m]))"#);
        let eu = set(&[("region", "eu")]);
        let us = set(&[("region", "us")]);
        // Steps 100m..200m read from 85m (10m range, 5m lookback).
        assert!(s.affected(&eu, 90 * M, 95 * M, 100 * M, 200 * M));
        assert!(!s.affected(&eu, 0, 80 * M, 100 * M, 200 * M));
        assert!(!s.affected(&eu, 201 * M, 300 * M, 100 * M, 200 * M));
        assert!(
            !s.affected(&us, 90 * M, 150 * M, 100 * M, 200 * M),
            "other labels"
        );
        assert!(
            s.affected(&[], 90 * M, 150 * M, 100 * M, 200 * M),
            "a store without external labels may hold anything"
        );
        // Offsets and subqueries widen the reach; `@` makes it timeless.
        let s = scope(r#"max_over_time(x[5m:1m] offset 1h)"#);
        assert!(s.affected(&eu, 30 * M, 40 * M, 100 * M, 200 * M));
        let s = scope(r#"x offset -30m"#);
        assert!(s.affected(&eu, 220 * M, 225 * M, 100 * M, 200 * M));
        let s = scope(r#"x @ 100"#);
        assert!(s.affected(&eu, 0, 1, 100 * M, 200 * M));
    }
}

//! Functions that read or rewrite labels: `absent*`, `label_replace`,
//! `label_join`.

use promql_parser::parser::Expr;

use super::*;
use crate::model::{Label, Labels};
use crate::promql::eval::{merge_same_labels, Evaluator, Grid, StepSeries, Val};
use crate::promql::PromqlError;

pub(super) fn selector_absent_labels(vs: &promql_parser::parser::VectorSelector) -> Labels {
    use promql_parser::label::MatchOp;
    let mut out: Vec<Label> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == crate::model::labels::METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            out.retain(|l| l.name != m.name);
            out.push(Label::new(m.name.clone(), m.value.clone()));
            seen.push(&m.name);
        } else {
            out.retain(|l| l.name != m.name);
        }
    }
    Labels::new(out).unwrap_or_default()
}

pub(super) fn absent_labels(e: &Expr) -> Labels {
    match e {
        Expr::VectorSelector(vs) => selector_absent_labels(vs),
        Expr::MatrixSelector(ms) => selector_absent_labels(&ms.vs),
        _ => Labels::empty(),
    }
}

pub(super) fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn relabel(
    series: Vec<StepSeries>,
    f: impl Fn(&Labels) -> Labels,
) -> Result<Val, PromqlError> {
    let out: Vec<StepSeries> = series
        .into_iter()
        .map(|s| StepSeries {
            labels: f(&s.labels),
            vals: s.vals,
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

pub(super) fn label_replace(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let name = "label_replace";
    let dst = ev.eval_string(arg(args, 1, name)?)?;
    let repl = ev.eval_string(arg(args, 2, name)?)?;
    let src = ev.eval_string(arg(args, 3, name)?)?;
    let re = ev.eval_string(arg(args, 4, name)?)?;
    let re = regex::Regex::new(&format!(
        "^(?:{})$",
        crate::model::matcher::go_compatible(&re)
    ))
    .map_err(|e| {
        PromqlError::execution(format!(
            "invalid regular expression in label_replace(): {e}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(PromqlError::execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
    relabel(series, |l| {
        let value = l.value_or_empty(&src);
        match re.captures(value) {
            Some(caps) => {
                let mut out = String::new();
                caps.expand(&repl, &mut out);
                l.with(&dst, &out)
            }
            None => l.clone(),
        }
    })
}

pub(super) fn label_join(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, PromqlError> {
    let name = "label_join";
    let dst = ev.eval_string(arg(args, 1, name)?)?;
    let sep = ev.eval_string(arg(args, 2, name)?)?;
    let mut srcs = Vec::new();
    for a in args.iter().skip(3) {
        let s = ev.eval_string(a)?;
        if !valid_label_name(&s) {
            return Err(PromqlError::execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) {
        return Err(PromqlError::execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let series = ev.eval_vector(arg(args, 0, name)?, grid)?;
    relabel(series, |l| {
        let joined: Vec<&str> = srcs.iter().map(|s| l.value_or_empty(s)).collect();
        l.with(&dst, &joined.join(&sep))
    })
}

//! Binary operators: between scalars, between a vector and a scalar, and
//! between vectors with label matching. Match signatures are computed once
//! per series; each step then pairs series through flat tables stamped
//! with the step, so no per-step clearing or allocation is needed.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{merge_same_labels, Evaluator, Grid, StepSeries, Val};
use super::PromqlError;
use crate::model::Labels;

use promql_parser::parser::token::TokenId;

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn drops_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW)
}

/// The value of `l op r` and whether a comparison keeps the element.
fn elem(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, b: &BinaryExpr, grid: Grid) -> Result<Val, PromqlError> {
    let op = b.op.id();
    let modifier = b.modifier.as_ref();
    if let Some(m) = modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return Err(PromqlError::bad_data("fill modifiers are not supported"));
        }
    }
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, grid)?;
    ev.release(&lhs);
    let rhs = ev.eval(&b.rhs, grid)?;
    ev.release(&rhs);
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = elem(op, l, r);
                    if is_comparison(op) {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(op, v, &s, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            let default = BinModifier {
                card: VectorMatchCardinality::OneToOne,
                matching: None,
                return_bool: false,
                fill_values: Default::default(),
            };
            let m = modifier.unwrap_or(&default);
            match op {
                T_LAND | T_LOR | T_LUNLESS => set_op(op, l, r, &m.matching, grid.n),
                _ => vector_vector(op, l, r, m, grid.n),
            }
        }
        _ => Err(PromqlError::bad_data(
            "binary expression must contain only scalar and instant vector types",
        )),
    }
}

fn vector_scalar(
    op: TokenId,
    series: Vec<StepSeries>,
    s: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Result<Val, PromqlError> {
    let drop = drops_name(op) || return_bool;
    let mut out = Vec::with_capacity(series.len());
    for mut x in series {
        let mut any = false;
        for (i, v) in x.vals.iter_mut().enumerate() {
            let Some(val) = *v else { continue };
            let (l, r) = if scalar_left {
                (s[i], val)
            } else {
                (val, s[i])
            };
            let (mut value, mut keep) = elem(op, l, r);
            if is_comparison(op) && scalar_left {
                value = r;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            *v = keep.then_some(value);
            any |= keep;
        }
        if any {
            if drop {
                x.labels = x.labels.without_name();
            }
            out.push(x);
        }
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// The match signature of a series: the `on` labels, or all labels but the
/// `ignoring` ones and the metric name.
fn signature(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => l.keep(&on.labels),
        Some(LabelModifier::Exclude(ign)) => l.without(&ign.labels).without_name(),
        None => l.without_name(),
    }
}

/// Interns signatures to small integers.
struct Sigs(HashMap<Labels, u32>);

impl Sigs {
    fn id(&mut self, l: Labels) -> u32 {
        let next = self.0.len() as u32;
        *self.0.entry(l).or_insert(next)
    }
}

fn set_op(
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    matching: &Option<LabelModifier>,
    n: usize,
) -> Result<Val, PromqlError> {
    let mut sigs = Sigs(HashMap::new());
    let ls: Vec<u32> = lhs
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    let rs: Vec<u32> = rhs
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    // seen[sig] == step + 1 when the other side has the signature at step.
    let mut seen = vec![0usize; sigs.0.len()];
    match op {
        T_LAND | T_LUNLESS => {
            let and = op == T_LAND;
            let mut lhs = lhs;
            for i in 0..n {
                for (s, &sig) in rhs.iter().zip(&rs) {
                    if s.vals[i].is_some() {
                        seen[sig as usize] = i + 1;
                    }
                }
                for (s, &sig) in lhs.iter_mut().zip(&ls) {
                    if s.vals[i].is_some() && (seen[sig as usize] == i + 1) != and {
                        s.vals[i] = None;
                    }
                }
            }
            lhs.retain(|s| !s.is_empty());
            Ok(Val::Vector(lhs))
        }
        _ => {
            let mut rhs = rhs;
            for i in 0..n {
                for (s, &sig) in lhs.iter().zip(&ls) {
                    if s.vals[i].is_some() {
                        seen[sig as usize] = i + 1;
                    }
                }
                for (s, &sig) in rhs.iter_mut().zip(&rs) {
                    if seen[sig as usize] == i + 1 {
                        s.vals[i] = None;
                    }
                }
            }
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !s.is_empty()));
            Ok(Val::Vector(merge_same_labels(out)?))
        }
    }
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &BinModifier,
    n: usize,
) -> Result<Val, PromqlError> {
    let (many, one, swapped, include) = match &m.card {
        VectorMatchCardinality::OneToMany(inc) => (rhs, lhs, true, Some(&inc.labels)),
        VectorMatchCardinality::ManyToOne(inc) => (lhs, rhs, false, Some(&inc.labels)),
        VectorMatchCardinality::OneToOne => (lhs, rhs, false, None),
        VectorMatchCardinality::ManyToMany => {
            return Err(PromqlError::bad_data(
                "many-to-many only allowed for set operators",
            ))
        }
    };
    let one_to_one = include.is_none();
    let mut sigs = Sigs(HashMap::new());
    let ms: Vec<u32> = many
        .iter()
        .map(|s| sigs.id(signature(&s.labels, &m.matching)))
        .collect();
    let os: Vec<u32> = one
        .iter()
        .map(|s| sigs.id(signature(&s.labels, &m.matching)))
        .collect();
    let nsig = sigs.0.len();
    // one_at[sig] = (step + 1, series) of the "one" side at the step.
    let mut one_at: Vec<(usize, u32)> = vec![(0, 0); nsig];
    let mut matched: Vec<usize> = vec![0; nsig];
    let mut out = JoinOutput {
        series: Vec::new(),
        by_labels: HashMap::new(),
        by_pair: HashMap::new(),
        last: vec![(u32::MAX, 0); many.len()],
        n,
    };
    let drop = drops_name(op) || m.return_bool;
    for i in 0..n {
        // Either side empty at this step: nothing matches, nothing clashes.
        if !one.iter().any(|s| s.vals[i].is_some()) || !many.iter().any(|s| s.vals[i].is_some()) {
            continue;
        }
        stamp_one_side(&one, &os, &mut one_at, i, swapped, m)?;
        for (j, (s, &sig)) in many.iter().zip(&ms).enumerate() {
            let Some(mv) = s.vals[i] else { continue };
            let (stamp, oi) = one_at[sig as usize];
            if stamp != i + 1 {
                continue;
            }
            let Some(ov) = one[oi as usize].vals[i] else {
                continue;
            };
            let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut value, mut keep) = elem(op, l, r);
            if m.return_bool {
                value = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if !keep {
                continue;
            }
            if one_to_one {
                if matched[sig as usize] == i + 1 {
                    return Err(PromqlError::execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                matched[sig as usize] = i + 1;
            }
            let slot = out.slot(j, oi, || {
                result_labels(
                    &s.labels,
                    &one[oi as usize].labels,
                    drop,
                    &m.matching,
                    one_to_one,
                    include,
                )
            });
            let dst = &mut out.series[slot].vals[i];
            if dst.is_some() {
                return Err(PromqlError::execution(if one_to_one {
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                } else {
                    "multiple matches for labels: grouping labels must ensure unique matches"
                }));
            }
            *dst = Some(value);
        }
    }
    let mut out = out.series;
    out.retain(|s| !s.is_empty());
    Ok(Val::Vector(out))
}

/// Records, for step `i`, which "one"-side series holds each match
/// signature; two at one step is Prometheus' many-to-many error.
fn stamp_one_side(
    one: &[StepSeries],
    sigs: &[u32],
    one_at: &mut [(usize, u32)],
    i: usize,
    swapped: bool,
    m: &BinModifier,
) -> Result<(), PromqlError> {
    for (j, (s, &sig)) in one.iter().zip(sigs).enumerate() {
        if s.vals[i].is_none() {
            continue;
        }
        let slot = &mut one_at[sig as usize];
        if slot.0 == i + 1 {
            let other = &one[slot.1 as usize];
            let side = if swapped { "left" } else { "right" };
            return Err(PromqlError::execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                signature(&s.labels, &m.matching),
                s.labels,
                other.labels
            )));
        }
        *slot = (i + 1, j as u32);
    }
    Ok(())
}

/// The output series of a vector join, found by the pair of input series
/// that makes them.
struct JoinOutput {
    series: Vec<StepSeries>,
    by_labels: HashMap<Labels, usize>,
    by_pair: HashMap<(u32, u32), usize>,
    /// Last pairing of each many-side series, to skip the maps when it holds.
    last: Vec<(u32, usize)>,
    n: usize,
}

impl JoinOutput {
    /// The output series of many-side series `j` paired with one-side
    /// series `oi`, made with `labels` on first use.
    fn slot(&mut self, j: usize, oi: u32, labels: impl FnOnce() -> Labels) -> usize {
        if self.last[j].0 == oi {
            return self.last[j].1;
        }
        let Self {
            series,
            by_labels,
            by_pair,
            n,
            ..
        } = self;
        let slot = *by_pair.entry((j as u32, oi)).or_insert_with(|| {
            *by_labels.entry(labels()).or_insert_with_key(|labels| {
                series.push(StepSeries {
                    labels: labels.clone(),
                    vals: vec![None; *n],
                });
                series.len() - 1
            })
        });
        self.last[j] = (oi, slot);
        slot
    }
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    drop_name: bool,
    matching: &Option<LabelModifier>,
    one_to_one: bool,
    include: Option<&Vec<String>>,
) -> Labels {
    let mut l = if drop_name {
        many.without_name()
    } else {
        many.clone()
    };
    if one_to_one {
        l = match matching {
            Some(LabelModifier::Include(on)) => l.keep(&on.labels),
            Some(LabelModifier::Exclude(ign)) => l.without(&ign.labels),
            None => l,
        };
    }
    if let Some(inc) = include {
        for name in inc {
            l = l.with(name, one.value_or_empty(name));
        }
    }
    l
}

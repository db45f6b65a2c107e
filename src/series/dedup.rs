//! Replica deduplication over decoded samples.
//!
//! `penalty`: follow one replica and switch to another only across a gap.
//! After picking a sample from one replica, the other replica may next be
//! picked only after twice the last step (5 s before any step is known), so
//! the merged series keeps the scrape interval instead of interleaving both
//! replicas, and a gap in one replica is filled from the other.
//!
//! `chain`: the union of all replicas' samples, one per timestamp.
//!
//! With `counter` set, switching replicas never shows a false counter reset:
//! when the replica switched to is lower than the last value emitted but has
//! not reset itself, it gets an offset that keeps the output monotonic.

use crate::model::Sample;

/// Step assumed before two samples of the output are known, in ms.
pub const INITIAL_PENALTY_MS: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupFunc {
    #[default]
    Penalty,
    Chain,
}

impl std::str::FromStr for DedupFunc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "penalty" => Ok(DedupFunc::Penalty),
            "chain" => Ok(DedupFunc::Chain),
            other => Err(format!(
                "unknown deduplication function {other:?}: expected penalty or chain"
            )),
        }
    }
}

/// Deduplicates `replicas` (each sorted by time) into `out`; returns how
/// many times the output switched replicas.
pub fn dedup(func: DedupFunc, replicas: &[&[Sample]], counter: bool, out: &mut Vec<Sample>) -> u64 {
    out.clear();
    match replicas {
        [] => 0,
        [one] => {
            out.extend_from_slice(one);
            0
        }
        _ => match func {
            DedupFunc::Chain => {
                chain(replicas, out);
                0
            }
            DedupFunc::Penalty if replicas.len() == 2 => {
                penalty_pair(replicas[0], replicas[1], counter, out)
            }
            DedupFunc::Penalty => {
                let mut acc: Vec<Sample> = Vec::new();
                let mut tmp: Vec<Sample> = Vec::new();
                let mut switches = penalty_pair(replicas[0], replicas[1], counter, &mut acc);
                for r in &replicas[2..] {
                    switches += penalty_pair(&acc, r, counter, &mut tmp);
                    std::mem::swap(&mut acc, &mut tmp);
                }
                out.append(&mut acc);
                switches
            }
        },
    }
}

/// First index in `s` at or after `t`, scanning forward from `from`: the
/// target is almost always one or two samples ahead.
#[inline]
fn seek(s: &[Sample], mut from: usize, t: i64) -> usize {
    while from < s.len() && s[from].t < t {
        from += 1;
    }
    from
}

fn penalty_pair(a: &[Sample], b: &[Sample], counter: bool, out: &mut Vec<Sample>) -> u64 {
    out.clear();
    let mut switches = 0u64;
    let mut prev_from_a: Option<bool> = None;
    out.reserve(a.len().max(b.len()));
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut pen_a, mut pen_b) = (0i64, 0i64);
    let mut last_t: Option<i64> = None;
    // Counter offsets per replica, and which replica the last sample came from.
    let (mut off_a, mut off_b) = (0.0f64, 0.0f64);
    let mut last: Option<(bool, f64)> = None;
    loop {
        let next = last_t.map_or(i64::MIN, |t| t.saturating_add(1));
        ia = seek(a, ia, next.saturating_add(pen_a));
        ib = seek(b, ib, next.saturating_add(pen_b));
        let use_a = match (a.get(ia), b.get(ib)) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x.t <= y.t,
        };
        let (s, prev_same) = if use_a {
            (a[ia], ia.checked_sub(1).map(|i| a[i]))
        } else {
            (b[ib], ib.checked_sub(1).map(|i| b[i]))
        };
        let mut v = s.v;
        if counter && !v.is_nan() {
            let off = if use_a { &mut off_a } else { &mut off_b };
            if let Some((from_a, last_v)) = last {
                if from_a != use_a && v + *off < last_v {
                    // Switched replicas and the new one is behind. A real
                    // reset shows in the replica itself; anything else is
                    // skew between replicas.
                    let reset_itself = prev_same.is_some_and(|p| !p.v.is_nan() && s.v < p.v);
                    if !reset_itself {
                        *off = last_v - v;
                    }
                }
            }
            v += *off;
            last = Some((use_a, v));
        }
        if let Some(t) = last_t {
            // Timestamps from peers may sit anywhere in i64.
            let penalty = s.t.saturating_sub(t).saturating_mul(2);
            if use_a {
                pen_b = penalty;
            } else {
                pen_a = penalty;
            }
        } else if use_a {
            pen_b = INITIAL_PENALTY_MS;
        } else {
            pen_a = INITIAL_PENALTY_MS;
        }
        if use_a {
            pen_a = 0;
            ia += 1;
        } else {
            pen_b = 0;
            ib += 1;
        }
        if prev_from_a.is_some_and(|p| p != use_a) {
            switches += 1;
        }
        prev_from_a = Some(use_a);
        last_t = Some(s.t);
        out.push(Sample { t: s.t, v });
    }
    switches
}

fn chain(replicas: &[&[Sample]], out: &mut Vec<Sample>) {
    let mut idx = vec![0usize; replicas.len()];
    loop {
        let mut best: Option<(i64, usize)> = None;
        for (r, s) in replicas.iter().enumerate() {
            if let Some(x) = s.get(idx[r]) {
                if best.is_none_or(|(t, _)| x.t < t) {
                    best = Some((x.t, r));
                }
            }
        }
        let Some((t, r)) = best else { break };
        out.push(replicas[r][idx[r]]);
        for (i, s) in replicas.iter().enumerate() {
            while s.get(idx[i]).is_some_and(|x| x.t == t) {
                idx[i] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(
        start: i64,
        step: i64,
        n: usize,
        skip: std::ops::Range<i64>,
        f: impl Fn(i64) -> f64,
    ) -> Vec<Sample> {
        (0..n as i64)
            .map(|i| start + i * step)
            .filter(|t| !skip.contains(t))
            .map(|t| Sample { t, v: f(t) })
            .collect()
    }

    #[test]
    fn gaps_in_each_replica_are_filled_from_the_other() {
        // Replica a misses 100s..200s, replica b misses 300s..400s; b's
        // scrapes are 7 s later than a's.
        let a = series(0, 15_000, 40, 100_000..200_000, |t| t as f64);
        let b = series(7_000, 15_000, 40, 300_000..400_000, |t| t as f64);
        let mut out = Vec::new();
        dedup(DedupFunc::Penalty, &[&a, &b], false, &mut out);
        // No gap wider than the penalty window (under three scrape
        // intervals), no two samples much closer than an interval.
        for w in out.windows(2) {
            let d = w[1].t - w[0].t;
            assert!(d <= 45_000, "gap of {d} ms at {}", w[0].t);
            assert!(d >= 7_000, "samples {d} ms apart at {}", w[0].t);
        }
        assert!(out.first().unwrap().t == 0);
        assert!(out.last().unwrap().t >= 585_000);
    }

    #[test]
    fn stays_on_one_replica_without_gaps() {
        let a = series(0, 15_000, 100, 0..0, |_| 1.0);
        let b = series(1_000, 15_000, 100, 0..0, |_| 2.0);
        let mut out = Vec::new();
        dedup(DedupFunc::Penalty, &[&a, &b], false, &mut out);
        assert_eq!(out.len(), 100);
        assert!(out.iter().all(|s| s.v == 1.0));
    }

    #[test]
    fn counters_do_not_reset_falsely_when_switching() {
        // b lags a by 100 units; a has a gap, so the output switches to b
        // and back.
        let a = series(0, 15_000, 60, 300_000..450_000, |t| {
            (t / 1000) as f64 + 100.0
        });
        let b = series(2_000, 15_000, 60, 0..0, |t| (t / 1000) as f64);
        let mut out = Vec::new();
        dedup(DedupFunc::Penalty, &[&a, &b], true, &mut out);
        for w in out.windows(2) {
            assert!(
                w[1].v >= w[0].v,
                "false reset {} -> {} at {}",
                w[0].v,
                w[1].v,
                w[1].t
            );
        }
        // Without the counter mode, the switch shows a drop.
        dedup(DedupFunc::Penalty, &[&a, &b], false, &mut out);
        assert!(out.windows(2).any(|w| w[1].v < w[0].v));
    }

    #[test]
    fn real_resets_survive_counter_mode() {
        let reset = |t: i64| {
            if t < 300_000 {
                (t / 1000) as f64
            } else {
                ((t - 300_000) / 1000) as f64
            }
        };
        let a = series(0, 15_000, 40, 0..0, reset);
        let b = series(2_000, 15_000, 40, 0..0, reset);
        let mut out = Vec::new();
        dedup(DedupFunc::Penalty, &[&a, &b], true, &mut out);
        let drops = out.windows(2).filter(|w| w[1].v < w[0].v).count();
        assert_eq!(drops, 1);
    }

    #[test]
    fn chain_is_a_union() {
        let a = series(0, 10, 5, 0..0, |_| 1.0);
        let b = series(5, 10, 5, 0..0, |_| 2.0);
        let c = series(0, 20, 3, 0..0, |_| 3.0);
        let mut out = Vec::new();
        dedup(DedupFunc::Chain, &[&a, &b, &c], false, &mut out);
        let ts: Vec<i64> = out.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
        assert_eq!(out[0].v, 1.0);
    }

    #[test]
    fn three_replicas() {
        let a = series(0, 15_000, 20, 0..150_000, |_| 1.0);
        let b = series(1_000, 15_000, 20, 100_000..300_000, |_| 2.0);
        let c = series(2_000, 15_000, 20, 0..0, |_| 3.0);
        let mut out = Vec::new();
        dedup(DedupFunc::Penalty, &[&a, &b, &c], false, &mut out);
        for w in out.windows(2) {
            assert!(w[1].t - w[0].t <= 45_000);
        }
    }
}

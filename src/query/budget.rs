//! The hedge budget and the other rules for extra requests: hedges (a
//! second member asked while the first still works) and fallbacks (the next
//! member after a failure).
//!
//! - Budget (`--query.hedge-budget`): over a sliding window of ten one-second
//!   slots, extra requests may be at most a share of primary requests, or
//!   `--query.hedge-budget-burst` when that is more (so a quiet querier still
//!   hedges). It is kept per group and per querier; a hedge needs room in
//!   both. Fallbacks count against it but are never refused by it: refusing
//!   one would turn a failure into missing data.
//! - Deadline: no hedge or fallback is sent when the time left before the
//!   query's deadline is below the time the group is expected to answer in
//!   (its median first-frame latency).
//! - Demotion: no hedge goes to a member the shared view demoted; it is
//!   slower than the one already asked.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::metrics::EXTRA_REFUSED_TOTAL;
use super::topology::{GroupTarget, MemberTarget};

/// One second's requests.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Seconds since the budget's clock started.
    second: u64,
    primaries: u32,
    extras: u32,
}

const SLOTS: usize = 10;

/// Primary and extra requests over the last ten seconds.
#[derive(Debug, Default)]
pub struct HedgeWindow {
    slots: Mutex<[Slot; SLOTS]>,
}

fn clock() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn second_now() -> u64 {
    clock().elapsed().as_secs()
}

impl HedgeWindow {
    fn with<T>(&self, f: impl FnOnce(&mut Slot, (u64, u64)) -> T) -> T {
        let now = second_now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (mut p, mut e) = (0u64, 0u64);
        for s in slots.iter() {
            if now.saturating_sub(s.second) < SLOTS as u64 {
                p += u64::from(s.primaries);
                e += u64::from(s.extras);
            }
        }
        let slot = &mut slots[(now % SLOTS as u64) as usize];
        if slot.second != now {
            // Reused for this second: its old counts are out of the window.
            if now.saturating_sub(slot.second) < SLOTS as u64 {
                p -= u64::from(slot.primaries);
                e -= u64::from(slot.extras);
            }
            *slot = Slot {
                second: now,
                primaries: 0,
                extras: 0,
            };
        }
        f(slot, (p, e))
    }

    pub fn primary(&self) {
        self.with(|s, _| s.primaries = s.primaries.saturating_add(1));
    }

    fn extra(&self) {
        self.with(|s, _| s.extras = s.extras.saturating_add(1));
    }

    /// Primary and extra requests in the window.
    pub fn counts(&self) -> (u64, u64) {
        self.with(|_, c| c)
    }

    /// Takes room for an extra request that may be refused (a hedge):
    /// counts it and says yes when the budget has room.
    pub fn try_extra(&self, cfg: &BudgetConfig) -> bool {
        let ok = self.has_room(cfg);
        if ok {
            self.extra();
        }
        ok
    }

    /// Counts an extra request that is never refused (a retry after a
    /// failure).
    pub fn force_extra(&self) {
        self.extra();
    }

    fn has_room(&self, cfg: &BudgetConfig) -> bool {
        let Some(ratio) = cfg.ratio else {
            return true;
        };
        let (p, e) = self.counts();
        let allowed = (ratio * p as f64).max(f64::from(cfg.burst));
        (e + 1) as f64 <= allowed
    }
}

/// `--query.hedge-budget` and `--query.hedge-budget-burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Extra requests per primary request; `None`: no budget.
    pub ratio: Option<f64>,
    /// Extra requests allowed in any window, however few primaries.
    pub burst: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: Some(0.1),
            burst: 5,
        }
    }
}

/// Parses a budget: a percentage (`10%`), a fraction (`0.1`), or `none`.
pub fn parse_budget(s: &str) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (number, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    let v: f64 = number
        .parse()
        .map_err(|_| format!("invalid hedge budget {s:?}: expected a percentage like 10%, a fraction like 0.1, or none"))?;
    let v = v / scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid hedge budget {s:?}: must be 0 or more"));
    }
    Ok(Some(v))
}

/// `--query.hedge-budget` as given: extra requests per primary request,
/// `None` for no budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetRatio(pub Option<f64>);

impl std::str::FromStr for BudgetRatio {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_budget(s).map(BudgetRatio)
    }
}

/// Why an extra request was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Budget,
    /// Less time is left than the group takes to answer.
    Deadline {
        left: Duration,
        expected: Duration,
    },
    /// The next member is demoted: slower than the one already asked.
    Demoted,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Budget => "budget",
            Refusal::Deadline { .. } => "deadline",
            Refusal::Demoted => "demoted",
        }
    }
}

/// The rules for one request's extra requests to one group.
pub struct Extras<'a> {
    pub group: &'a GroupTarget,
    pub querier: &'a HedgeWindow,
    pub cfg: &'a BudgetConfig,
    pub deadline: Option<Instant>,
}

impl Extras<'_> {
    /// Counts a primary request.
    pub fn primary(&self) {
        self.querier.primary();
        self.group.budget.primary();
    }

    /// Whether a hedge to `next` may be sent now; counts it if so, and the
    /// refusal if not.
    pub fn hedge(&self, next: &MemberTarget) -> Result<(), Refusal> {
        let r = if next.stats.demoted() {
            Err(Refusal::Demoted)
        } else {
            self.time_left().and_then(|()| {
                if self.querier.has_room(self.cfg) && self.group.budget.has_room(self.cfg) {
                    Ok(())
                } else {
                    Err(Refusal::Budget)
                }
            })
        };
        self.settle("hedge", r)
    }

    /// Whether a fallback may be sent now (only the deadline can say no);
    /// counts it if so, and the refusal if not.
    pub fn fallback(&self) -> Result<(), Refusal> {
        let r = self.time_left();
        self.settle("fallback", r)
    }

    /// Counts a probe of a demoted member as an extra request.
    pub fn probe(&self) {
        self.querier.extra();
        self.group.budget.extra();
    }

    fn settle(&self, kind: &'static str, r: Result<(), Refusal>) -> Result<(), Refusal> {
        match r {
            Ok(()) => {
                self.querier.extra();
                self.group.budget.extra();
            }
            Err(why) => {
                metrics::counter!(EXTRA_REFUSED_TOTAL, "kind" => kind, "reason" => why.reason())
                    .increment(1);
                super::stats::add(super::stats::Counter::ExtrasRefused, 1);
            }
        }
        r
    }

    fn time_left(&self) -> Result<(), Refusal> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let expected = expected_answer_time(self.group);
        if left < expected {
            Err(Refusal::Deadline { left, expected })
        } else {
            Ok(())
        }
    }
}

/// How long the group takes to answer: the median of its members' first
/// frames once it has seen enough of them; before that, the fastest
/// member's estimate (zero when nothing is known).
pub fn expected_answer_time(group: &GroupTarget) -> Duration {
    group
        .latency
        .quantile_interpolated(0.5, 3)
        .unwrap_or_else(|| {
            group
                .members
                .iter()
                .map(|m| m.stats.latency())
                .filter(|l| !l.is_zero())
                .min()
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        assert_eq!(parse_budget("10%"), Ok(Some(0.1)));
        assert_eq!(parse_budget("0.25"), Ok(Some(0.25)));
        assert_eq!(parse_budget("none"), Ok(None));
        assert_eq!(parse_budget("0"), Ok(Some(0.0)));
        assert!(parse_budget("-1").is_err());
        assert!(parse_budget("ten").is_err());
        assert!(parse_budget("NaN").is_err());
    }

    #[test]
    fn the_window_holds_extras_to_the_share_or_the_burst() {
        let w = HedgeWindow::default();
        let cfg = BudgetConfig {
            ratio: Some(0.1),
            burst: 2,
        };
        // Few primaries: the burst.
        w.primary();
        assert!(w.has_room(&cfg));
        w.extra();
        assert!(w.has_room(&cfg));
        w.extra();
        assert!(!w.has_room(&cfg));
        // 100 primaries: ten extras in all.
        for _ in 0..99 {
            w.primary();
        }
        let mut sent = 2;
        while w.has_room(&cfg) {
            w.extra();
            sent += 1;
        }
        assert_eq!(sent, 10);
        assert_eq!(w.counts(), (100, 10));
        let unlimited = BudgetConfig {
            ratio: None,
            burst: 0,
        };
        assert!(w.has_room(&unlimited));
    }
}

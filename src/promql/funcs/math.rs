//! Arithmetic as Go does it: min/max with NaN, quantiles, math and date
//! functions of one value.

/// The φ-quantile of `vals` (sorted in place), interpolating between ranks.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(go_float_less);
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// Go's `sort.Float64s` order: NaNs first, then ascending.
pub(super) fn go_float_less(a: &f64, b: &f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Go's `math.Max` and `math.Min`: an infinity in the direction of the
/// operation wins, then NaN; signed zeros are ordered.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

pub(super) fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go converts a NaN or out-of-range float to the smallest int64 on amd64.
pub(super) fn go_i64(v: f64) -> i64 {
    const LIMIT: f64 = 9.223_372_036_854_776e18;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// A date as Go's `time.Unix(int64(v), 0).UTC()` computes it, including
/// its wrap-around for times out of range (NaN, ±Inf): seconds since
/// year -292277022399 as an unsigned number.
pub(super) struct GoDate {
    abs: u64,
}

impl GoDate {
    const DAY: u64 = 86_400;
    /// Seconds from Go's absolute zero year to its internal year 1.
    const ABSOLUTE_TO_INTERNAL: i64 = -9_223_371_966_579_724_800;
    const UNIX_TO_INTERNAL: i64 = 62_135_596_800;
    const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;

    pub(super) fn new(v: f64) -> Self {
        let internal = go_i64(v).wrapping_add(Self::UNIX_TO_INTERNAL);
        Self {
            abs: internal.wrapping_sub(Self::ABSOLUTE_TO_INTERNAL) as u64,
        }
    }

    fn hour(&self) -> u64 {
        (self.abs % Self::DAY) / 3600
    }

    fn minute(&self) -> u64 {
        (self.abs % 3600) / 60
    }

    fn weekday(&self) -> u64 {
        ((self.abs + Self::DAY) % (7 * Self::DAY)) / Self::DAY
    }

    /// (year, month 1-12, day of month, day of year from 0).
    pub(super) fn date(&self) -> (i64, u32, u32, u32) {
        const PER_400: u64 = 365 * 400 + 97;
        const PER_100: u64 = 365 * 100 + 24;
        const PER_4: u64 = 365 * 4 + 1;
        let mut d = self.abs / Self::DAY;
        let mut n = d / PER_400;
        let mut y = 400 * n;
        d -= PER_400 * n;
        n = d / PER_100;
        n -= n >> 2;
        y += 100 * n;
        d -= PER_100 * n;
        n = d / PER_4;
        y += 4 * n;
        d -= PER_4 * n;
        n = d / 365;
        n -= n >> 2;
        y += n;
        d -= 365 * n;
        let year = (y as i64).wrapping_add(Self::ABSOLUTE_ZERO_YEAR);
        let yday = d as u32;
        let mut day = yday;
        if is_leap(year) {
            if day == 31 + 29 - 1 {
                return (year, 2, 29, yday);
            }
            if day > 31 + 29 - 1 {
                day -= 1;
            }
        }
        const BEFORE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
        let mut month = (day / 31) as usize;
        let end = BEFORE[month + 1];
        let begin = if day >= end {
            month += 1;
            end
        } else {
            BEFORE[month]
        };
        (year, month as u32 + 1, day - begin + 1, yday)
    }
}

pub(super) fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

pub(super) fn date_part(name: &str) -> fn(f64) -> f64 {
    match name {
        "minute" => |v| GoDate::new(v).minute() as f64,
        "hour" => |v| GoDate::new(v).hour() as f64,
        "day_of_week" => |v| GoDate::new(v).weekday() as f64,
        "day_of_month" => |v| GoDate::new(v).date().2 as f64,
        "month" => |v| GoDate::new(v).date().1 as f64,
        "year" => |v| GoDate::new(v).date().0 as f64,
        "day_of_year" => |v| (GoDate::new(v).date().3 + 1) as f64,
        _ => |v| {
            let (y, m, _, _) = GoDate::new(v).date();
            month_days(y, m) as f64
        },
    }
}

pub(super) fn month_days(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

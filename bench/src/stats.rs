//! Medians, spreads and percentiles, and how figures are written.

/// Several runs of one figure.
#[derive(Clone, Debug, Default)]
pub struct Runs(pub Vec<f64>);

impl Runs {
    /// The median (the mean of the two middle values for an even count).
    pub fn median(&self) -> Option<f64> {
        let mut v = self.0.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let n = v.len();
        Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
    }
    pub fn min(&self) -> Option<f64> {
        self.0.iter().copied().reduce(f64::min)
    }
    pub fn max(&self) -> Option<f64> {
        self.0.iter().copied().reduce(f64::max)
    }
    pub fn n(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `median (min–max, n runs)` with `fmt` applied to each number.
    pub fn show(&self, fmt: impl Fn(f64) -> String) -> String {
        match (self.median(), self.min(), self.max()) {
            (Some(m), Some(lo), Some(hi)) if self.n() > 1 => {
                format!("{} ({}–{}, n={})", fmt(m), fmt(lo), fmt(hi), self.n())
            }
            (Some(m), _, _) => format!("{} (n=1)", fmt(m)),
            _ => "—".into(),
        }
    }
}

/// Percentiles of integer nanosecond samples (sorted in place).
pub fn percentiles_ns(samples: &mut [u64], ps: &[f64]) -> Vec<f64> {
    samples.sort_unstable();
    ps.iter()
        .map(|p| {
            if samples.is_empty() {
                return f64::NAN;
            }
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1] as f64
        })
        .collect()
}

/// A duration in seconds, written with a unit that suits it.
pub fn dur(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    if secs >= 120.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}

/// Nanoseconds, written with a unit that suits them.
pub fn ns(v: f64) -> String {
    dur(v / 1e9)
}

/// KiB, written as KiB or MiB.
pub fn kib(v: f64) -> String {
    if v.abs() >= 10.0 * 1024.0 {
        format!("{:.1} MiB", v / 1024.0)
    } else {
        format!("{v:.1} KiB")
    }
}

pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `a / b` written as `12.3×` (None or a zero denominator: `—`).
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => {
            let r = a / b;
            if r >= 100.0 {
                format!("{r:.0}×")
            } else if r >= 10.0 {
                format!("{r:.1}×")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentiles_ns(&mut s, &[50.0, 99.0]), vec![500.0, 990.0]);
    }

    #[test]
    fn runs_show_median_and_spread() {
        let r = Runs(vec![3.0, 1.0, 2.0]);
        assert_eq!(r.show(|v| format!("{v:.0}")), "2 (1–3, n=3)");
        assert_eq!(Runs(vec![4.0, 1.0]).median(), Some(2.5));
        assert_eq!(dur(300.0), "5.0 min");
        assert_eq!(dur(0.0015), "1.50 ms");
        assert_eq!(ratio(Some(10.0), Some(4.0)), "2.50×");
        assert_eq!(ratio(Some(1.0), None), "—");
    }
}

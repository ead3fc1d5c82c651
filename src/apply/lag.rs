//! Replication lag, measured per applied record: from capture (`captured_at`, millisecond
//! precision) and from the source's own change time when the event carried one (`changed_at`;
//! EventBridge/CloudTrail times have one-second resolution) to the moment its batch was applied.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lag samples in milliseconds (1 ms to 1 day, 3 significant digits).
#[derive(Debug, Clone)]
pub struct LagRecorder {
    // `None` only if the histogram could not be built (its bounds are constants, so never).
    from_capture: Option<Histogram<u64>>,
    from_change: Option<Histogram<u64>>,
}

/// Percentiles of a lag distribution, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LagSummary {
    pub samples: u64,
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    pub max_seconds: f64,
}

fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 86_400_000, 3).ok()
}

impl Default for LagRecorder {
    fn default() -> Self {
        LagRecorder { from_capture: new_histogram(), from_change: new_histogram() }
    }
}

fn summary(h: &Option<Histogram<u64>>) -> LagSummary {
    let Some(h) = h.as_ref().filter(|h| !h.is_empty()) else {
        return LagSummary::default();
    };
    let s = |ms: u64| ms as f64 / 1000.0;
    LagSummary {
        samples: h.len(),
        p50_seconds: s(h.value_at_quantile(0.5)),
        p99_seconds: s(h.value_at_quantile(0.99)),
        max_seconds: s(h.max()),
    }
}

impl LagRecorder {
    /// Records one applied record.
    pub fn record(&mut self, applied_at: i64, captured_at: i64, changed_at: Option<i64>) {
        let ms = |from: i64| u64::try_from((applied_at - from).max(1)).unwrap_or(1);
        if let Some(h) = &mut self.from_capture {
            h.saturating_record(ms(captured_at));
        }
        if let (Some(h), Some(c)) = (&mut self.from_change, changed_at) {
            h.saturating_record(ms(c));
        }
    }

    pub fn merge(&mut self, other: &LagRecorder) {
        if let (Some(a), Some(b)) = (&mut self.from_capture, &other.from_capture) {
            let _ = a.add(b);
        }
        if let (Some(a), Some(b)) = (&mut self.from_change, &other.from_change) {
            let _ = a.add(b);
        }
    }

    pub fn from_capture(&self) -> LagSummary {
        summary(&self.from_capture)
    }

    pub fn from_change(&self) -> LagSummary {
        summary(&self.from_change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = LagRecorder::default();
        for i in 1..=100 {
            l.record(10_000 + i * 10, 10_000, Some(9_000));
        }
        let s = l.from_capture();
        assert_eq!(s.samples, 100);
        assert!((s.p50_seconds - 0.5).abs() < 0.01, "{s:?}");
        assert!((s.p99_seconds - 0.99).abs() < 0.01, "{s:?}");
        assert_eq!(l.from_change().samples, 100);
        assert!(l.from_change().p50_seconds > 1.4);
    }
}

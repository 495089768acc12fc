//! A mergeable latency histogram: fixed, log-spaced buckets whose counts add element-wise, so
//! any percentile of any range (hours, days, agents, endpoints merged) can be computed, which
//! averaged percentiles never allow.
//!
//! Bucket 0 holds durations ≤ 0.05 ms; bucket k (1 ≤ k ≤ 147) holds (0.05·1.1^(k−1), 0.05·1.1^k]
//! milliseconds; the last bucket holds everything over 60 s. A bucket is reported as
//! 0.05·1.1^(k−1)·2.2/2.1, whose distance to any value in the bucket is at most
//! (1.1−1)/(1.1+1) ≈ 4.8%: every percentile between 0.05 ms and 60 s is within 5% of the exact
//! one. Histograms are stored as `bigint[]` of these 149 counts; the writers merge them in Rust
//! (see `aim-pipeline`'s `rollup/apply.rs`).

use serde::{Deserialize, Serialize};

pub const MIN_MS: f64 = 0.05;
pub const MAX_MS: f64 = 60_000.0;
pub const GROWTH: f64 = 1.1;
/// Buckets between the two bounds: ⌈ln(MAX/MIN)/ln(GROWTH)⌉.
pub const LOG_BUCKETS: usize = 147;
/// The underflow bucket, the log-spaced ones, the overflow bucket.
pub const BUCKETS: usize = LOG_BUCKETS + 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram(Vec<i64>);

impl Default for Histogram {
    fn default() -> Self {
        Self(vec![0; BUCKETS])
    }
}

impl Histogram {
    /// From stored counts; a shorter array (an older or empty row) is padded with zeros.
    pub fn from_counts(mut counts: Vec<i64>) -> Self {
        counts.resize(BUCKETS, 0);
        Self(counts)
    }

    pub fn counts(&self) -> &[i64] {
        &self.0
    }

    #[inline]
    pub fn bucket(duration_ms: f64) -> usize {
        if duration_ms.is_nan() || duration_ms <= MIN_MS {
            return 0;
        }
        if duration_ms > MAX_MS {
            return BUCKETS - 1;
        }
        let k = ((duration_ms / MIN_MS).ln() / GROWTH.ln()).ceil() as usize;
        k.clamp(1, LOG_BUCKETS)
    }

    /// The value a bucket stands for.
    pub fn representative(bucket: usize) -> f64 {
        match bucket {
            0 => MIN_MS,
            b if b >= BUCKETS - 1 => MAX_MS,
            k => MIN_MS * GROWTH.powi(k as i32 - 1) * 2.0 * GROWTH / (1.0 + GROWTH),
        }
    }

    pub fn record(&mut self, duration_ms: f64) {
        self.record_bucket(Self::bucket(duration_ms));
    }

    /// Counts one value of `bucket` (from [`Histogram::bucket`]).
    #[inline]
    pub fn record_bucket(&mut self, bucket: usize) {
        if let Some(count) = self.0.get_mut(bucket) {
            *count += 1;
        }
    }

    #[inline]
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine += theirs;
        }
    }

    /// Adds stored counts (possibly shorter than [`BUCKETS`]: trailing zero buckets are not
    /// stored) without copying them first.
    #[inline]
    pub fn merge_counts(&mut self, counts: &[i64]) {
        for (mine, theirs) in self.0.iter_mut().zip(counts) {
            *mine += theirs;
        }
    }

    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0.0–1.0) in milliseconds; 0 when empty. Uses the nearest-rank
    /// definition: the smallest bucket whose cumulative count reaches ⌈q·total⌉.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::representative(bucket);
            }
        }
        MAX_MS
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_bounds_are_where_the_documentation_says() {
        assert!(MIN_MS * GROWTH.powi(LOG_BUCKETS as i32) >= MAX_MS);
        assert!(MIN_MS * GROWTH.powi(LOG_BUCKETS as i32 - 1) < MAX_MS);
        assert_eq!(Histogram::bucket(0.0), 0);
        assert_eq!(Histogram::bucket(f64::NAN), 0);
        assert_eq!(Histogram::bucket(MIN_MS), 0);
        assert_eq!(Histogram::bucket(MAX_MS + 1.0), BUCKETS - 1);
        assert_eq!(Histogram::bucket(MAX_MS), LOG_BUCKETS);
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn percentiles_are_within_five_percent(
            mut values in proptest::collection::vec(MIN_MS..MAX_MS, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::default();
            for v in &values {
                h.record(*v);
            }
            values.sort_by(f64::total_cmp);
            let truth = exact(&values, q);
            let estimate = h.quantile(q);
            prop_assert!((estimate - truth).abs() <= 0.05 * truth, "q={} truth={} estimate={}", q, truth, estimate);
        }

        #[test]
        fn merging_equals_recording_everything_once(
            a in proptest::collection::vec(0.0f64..100_000.0, 0..100),
            b in proptest::collection::vec(0.0f64..100_000.0, 0..100),
        ) {
            let (mut ha, mut hb, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
            for v in &a { ha.record(*v); all.record(*v); }
            for v in &b { hb.record(*v); all.record(*v); }
            ha.merge(&hb);
            prop_assert_eq!(ha, all);
        }
    }
}

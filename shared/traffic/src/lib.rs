//! The rollup traffic model, owned here so that neither side owns the other's: the writers
//! (`aim-pipeline`) fold calls into [`Traffic`] and upsert it, the store (`aim-store`) reads rollup
//! rows back as [`Traffic`], and the analytics routes merge them with the same
//! [`Traffic::merge`]. Pure data and arithmetic: no I/O, no SQL.

pub mod histogram;

use chrono::{DateTime, Utc};

pub use histogram::Histogram;

/// The traffic columns every rollup row carries; they add up (the last call's time by taking
/// the later one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub calls: i64,
    pub errors: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub total_duration_ms: f64,
    pub histogram: Histogram,
    /// When the latest call counted here was made, in Unix microseconds; 0 for none (the
    /// `last_call_at` column is NULL then).
    pub last_call_us: i64,
}

/// One call as every rollup it lands in counts it; its latency bucket is found once.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub status: i32,
    pub duration_ms: f64,
    /// From [`Histogram::bucket`].
    pub bucket: usize,
    pub request: i64,
    pub response: i64,
    /// Unix microseconds.
    pub at_us: i64,
}

impl Traffic {
    pub fn record(
        &mut self,
        status: i32,
        duration_ms: f64,
        request: i64,
        response: i64,
        at: DateTime<Utc>,
    ) {
        self.add(&Sample {
            status,
            duration_ms,
            bucket: Histogram::bucket(duration_ms),
            request,
            response,
            at_us: at.timestamp_micros(),
        });
    }

    #[inline]
    pub fn add(&mut self, s: &Sample) {
        self.calls += 1;
        if s.status >= 400 {
            self.errors += 1;
        }
        if (400..500).contains(&s.status) {
            self.client_errors += 1;
        }
        if s.status >= 500 {
            self.server_errors += 1;
        }
        self.request_bytes = self.request_bytes.saturating_add(s.request);
        self.response_bytes = self.response_bytes.saturating_add(s.response);
        self.total_duration_ms += s.duration_ms;
        self.histogram.record_bucket(s.bucket);
        self.last_call_us = self.last_call_us.max(s.at_us);
    }

    #[inline]
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
        self.total_duration_ms += other.total_duration_ms;
        self.histogram.merge(&other.histogram);
        self.last_call_us = self.last_call_us.max(other.last_call_us);
    }

    /// The `last_call_at` value: `None` when no call is counted.
    pub fn last_call(&self) -> Option<DateTime<Utc>> {
        (self.last_call_us != 0)
            .then(|| DateTime::from_timestamp_micros(self.last_call_us))
            .flatten()
    }

    pub fn avg_ms(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total_duration_ms / self.calls as f64
        }
    }
}

//! Rollups computed in Rust: each batch is folded into additive deltas per (organization,
//! agent, hour), per (organization, day) and per (organization, method, endpoint, hour), which
//! the writer upserts in the batch's own transaction, so raw rows and rollups can never
//! disagree and a replayed batch (skipped by the ledger) can never double-count.

pub mod apply;
pub mod histogram;
pub mod verify;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::copy::RowRef;
pub use histogram::Histogram;

/// The traffic columns every rollup row carries; they add up.
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
}

impl Traffic {
    pub fn record(&mut self, status: i32, duration_ms: f64, request: i64, response: i64) {
        self.calls += 1;
        if status >= 400 {
            self.errors += 1;
        }
        if (400..500).contains(&status) {
            self.client_errors += 1;
        }
        if status >= 500 {
            self.server_errors += 1;
        }
        self.request_bytes = self.request_bytes.saturating_add(request);
        self.response_bytes = self.response_bytes.saturating_add(response);
        self.total_duration_ms += duration_ms;
        self.histogram.record(duration_ms);
    }

    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
        self.total_duration_ms += other.total_duration_ms;
        self.histogram.merge(&other.histogram);
    }

    pub fn avg_ms(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total_duration_ms / self.calls as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentHour {
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub hour: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrgDay {
    pub organization_id: Uuid,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointHour {
    pub organization_id: Uuid,
    pub method: String,
    pub endpoint: String,
    pub hour: DateTime<Utc>,
}

/// A batch (or a range of raw rows) folded into rollup deltas. `BTreeMap`s keep keys sorted,
/// so every writer upserts in the same order and concurrent writers never deadlock.
#[derive(Debug, Default, PartialEq)]
pub struct Deltas {
    pub agent_hours: BTreeMap<AgentHour, Traffic>,
    pub org_days: BTreeMap<OrgDay, Traffic>,
    pub endpoint_hours: BTreeMap<EndpointHour, Traffic>,
}

impl Deltas {
    pub fn add(&mut self, row: &RowRef<'_>) {
        let at = DateTime::from_timestamp_micros(row.called_at_us).unwrap_or_default();
        let hour = truncate_to_hour(at);
        let record = |t: &mut Traffic| {
            t.record(
                row.status_code,
                row.duration_ms,
                row.request_size_bytes,
                row.response_size_bytes,
            );
        };
        if let Some(agent_id) = row.agent_id {
            record(
                self.agent_hours
                    .entry(AgentHour {
                        organization_id: row.organization_id,
                        agent_id,
                        hour,
                    })
                    .or_default(),
            );
        }
        record(
            self.org_days
                .entry(OrgDay {
                    organization_id: row.organization_id,
                    date: at.date_naive(),
                })
                .or_default(),
        );
        let key = EndpointHour {
            organization_id: row.organization_id,
            method: crate::event::clean(row.method, 16),
            endpoint: crate::event::clean(row.endpoint, 512),
            hour,
        };
        record(self.endpoint_hours.entry(key).or_default());
    }

    pub fn is_empty(&self) -> bool {
        self.org_days.is_empty()
    }
}

pub fn truncate_to_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

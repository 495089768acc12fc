//! Rollups computed in Rust: each batch is folded into additive deltas per (organization,
//! agent, hour and day), per (organization, method, endpoint, hour and day) and per
//! (organization, day), which the writer upserts in the batch's own transaction, so raw rows and
//! rollups can never disagree and a replayed batch (skipped by the ledger) can never
//! double-count.

pub mod apply;
pub mod sql;
pub mod verify;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use aim_traffic::Sample;
pub use aim_traffic::{Histogram, Traffic};

use crate::event::{MAX_ENDPOINT_CHARS, MAX_METHOD_CHARS, RowRef};

/// The five rollup tables. [`Table::ALL`] is also the order in which a batch writes them, so
/// that concurrent transactions lock rows in one global order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    AgentHour,
    AgentDay,
    EndpointHour,
    EndpointDay,
    OrgDay,
}

impl Table {
    pub const ALL: [Self; 5] = [
        Self::AgentHour,
        Self::AgentDay,
        Self::EndpointHour,
        Self::EndpointDay,
        Self::OrgDay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::AgentHour => "agent_activity_metrics",
            Self::AgentDay => "agent_daily_metrics",
            Self::EndpointHour => "endpoint_hourly_metrics",
            Self::EndpointDay => "endpoint_daily_metrics",
            Self::OrgDay => "organization_daily_metrics",
        }
    }

    pub fn per_agent(self) -> bool {
        matches!(self, Self::AgentHour | Self::AgentDay)
    }

    pub fn per_endpoint(self) -> bool {
        matches!(self, Self::EndpointHour | Self::EndpointDay)
    }

    /// Daily tables key on a `date` column, hourly ones on `hour_timestamp`.
    pub fn daily(self) -> bool {
        matches!(self, Self::AgentDay | Self::EndpointDay | Self::OrgDay)
    }
}

/// A rollup row's key, whichever the table: the parts a table does not have are `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub organization_id: Uuid,
    pub agent_id: Option<Uuid>,
    /// Method and route template.
    pub route: Option<(String, String)>,
    /// The start of the UTC hour or day, in Unix seconds.
    pub start: i64,
}

impl Key {
    pub fn hour(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.start, 0).unwrap_or_default()
    }

    pub fn date(&self) -> NaiveDate {
        self.hour().date_naive()
    }
}

/// The key as the fold holds it: plain data, the route interned, so a lookup per call neither
/// allocates nor compares strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    organization_id: Uuid,
    agent_id: Option<Uuid>,
    route: Option<u32>,
    start: i64,
}

/// A borrowed `(method, endpoint)` that hashes and compares like the owned pair, so the route
/// table is searched without building a `String` per call. (`HashMap::raw_entry` would do it
/// but is not stable; hashbrown's `Equivalent` is the supported way.)
struct RouteRef<'a>(&'a str, &'a str);

impl Hash for RouteRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly what `(String, String)` feeds the hasher.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(String, String)> for RouteRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A batch (or a range of raw rows) folded into rollup deltas.
///
/// Each call is counted once per agent-hour and once per endpoint-hour; the daily tables are
/// sums of those (an agent's day of its hours, an endpoint's day of its hours, the
/// organization's day of all its endpoint-hours), derived when asked for: two map updates per
/// call instead of five, on the path every event takes.
#[derive(Debug, Default)]
pub struct Deltas {
    /// Raw `(method, endpoint)` as the calls carry them → index into `routes`.
    route_ids: hashbrown::HashMap<(String, String), u32>,
    /// The routes as stored (cleaned of what PostgreSQL refuses, capped).
    routes: Vec<(String, String)>,
    agent_hours: hashbrown::HashMap<Slot, Traffic>,
    endpoint_hours: hashbrown::HashMap<Slot, Traffic>,
}

const HOUR_S: i64 = 3_600;
const DAY_S: i64 = 86_400;

impl Deltas {
    pub fn add(&mut self, row: &RowRef<'_>) {
        let seconds = row.called_at_us.div_euclid(1_000_000);
        let hour = seconds - seconds.rem_euclid(HOUR_S);
        let sample = Sample {
            status: row.status_code,
            duration_ms: row.duration_ms,
            bucket: Histogram::bucket(row.duration_ms),
            request: row.request_size_bytes,
            response: row.response_size_bytes,
            at_us: row.called_at_us,
        };
        let route = self.route_id(row.method, row.endpoint);
        if let Some(agent) = row.agent_id {
            self.agent_hours
                .entry(Slot {
                    organization_id: row.organization_id,
                    agent_id: Some(agent),
                    route: None,
                    start: hour,
                })
                .or_default()
                .add(&sample);
        }
        self.endpoint_hours
            .entry(Slot {
                organization_id: row.organization_id,
                agent_id: None,
                route: Some(route),
                start: hour,
            })
            .or_default()
            .add(&sample);
    }

    fn route_id(&mut self, method: &str, endpoint: &str) -> u32 {
        if let Some(id) = self.route_ids.get(&RouteRef(method, endpoint)) {
            return *id;
        }
        // Cleaned the way the raw row is, so rollups and `api_calls` name the same route.
        let cleaned = (
            crate::event::clean(method, MAX_METHOD_CHARS),
            crate::event::clean(endpoint, MAX_ENDPOINT_CHARS),
        );
        // Distinct raw pairs may clean to the same one: they share its id.
        let id = match self.routes.iter().position(|r| *r == cleaned) {
            Some(found) => found,
            None => {
                self.routes.push(cleaned);
                self.routes.len() - 1
            }
        };
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        self.route_ids
            .insert((method.to_owned(), endpoint.to_owned()), id);
        id
    }

    /// The table's deltas by slot: the hourly maps as they are, the daily ones summed from them.
    fn slots(&self, table: Table) -> std::borrow::Cow<'_, hashbrown::HashMap<Slot, Traffic>> {
        use std::borrow::Cow;
        let (hours, keep_route) = match table {
            Table::AgentHour => return Cow::Borrowed(&self.agent_hours),
            Table::EndpointHour => return Cow::Borrowed(&self.endpoint_hours),
            Table::AgentDay => (&self.agent_hours, false),
            Table::EndpointDay => (&self.endpoint_hours, true),
            Table::OrgDay => (&self.endpoint_hours, false),
        };
        let mut days: hashbrown::HashMap<Slot, Traffic> = hashbrown::HashMap::new();
        for (slot, traffic) in hours {
            let day = Slot {
                route: if keep_route { slot.route } else { None },
                start: slot.start - slot.start.rem_euclid(DAY_S),
                ..*slot
            };
            days.entry(day).or_default().merge(traffic);
        }
        Cow::Owned(days)
    }

    fn key(&self, slot: &Slot) -> Key {
        Key {
            organization_id: slot.organization_id,
            agent_id: slot.agent_id,
            route: slot
                .route
                .and_then(|id| self.routes.get(id as usize).cloned()),
            start: slot.start,
        }
    }

    /// The table's deltas in key order: every writer upserts in the same order, so concurrent
    /// writers never deadlock.
    pub fn rows(&self, table: Table) -> Vec<(Key, Traffic)> {
        let mut rows: Vec<(Key, Traffic)> = match self.slots(table) {
            std::borrow::Cow::Borrowed(slots) => slots
                .iter()
                .map(|(slot, traffic)| (self.key(slot), traffic.clone()))
                .collect(),
            std::borrow::Cow::Owned(slots) => slots
                .into_iter()
                .map(|(slot, traffic)| (self.key(&slot), traffic))
                .collect(),
        };
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The table's deltas as a map, for comparisons.
    pub fn map(&self, table: Table) -> BTreeMap<Key, Traffic> {
        self.rows(table).into_iter().collect()
    }

    /// Rows per table.
    pub fn len(&self, table: Table) -> usize {
        self.slots(table).len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoint_hours.is_empty()
    }
}

pub fn truncate_to_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp().div_euclid(HOUR_S) * HOUR_S;
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "organization {}", self.organization_id)?;
        if let Some(agent) = self.agent_id {
            write!(f, ", agent {agent}")?;
        }
        if let Some((method, endpoint)) = &self.route {
            write!(f, ", {method} {endpoint}")?;
        }
        write!(f, ", from {}", self.hour().to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(method: &'a str, endpoint: &'a str, agent: Option<Uuid>, at_us: i64) -> RowRef<'a> {
        RowRef {
            id: Uuid::nil(),
            organization_id: Uuid::from_u128(1),
            agent_id: agent,
            user_id: None,
            method,
            endpoint,
            status_code: 200,
            duration_ms: 1.0,
            request_size_bytes: 1,
            response_size_bytes: 2,
            user_agent: None,
            ip_address: None,
            error_message: None,
            request_id: None,
            called_at_us: at_us,
        }
    }

    #[test]
    fn calls_land_in_their_hour_day_route_and_agent() {
        let agent = Uuid::from_u128(2);
        let mut d = Deltas::default();
        // 2026-11-28 23:59:59.5 and 2026-11-29 00:00:00 UTC.
        let late = 1_795_910_399_500_000;
        d.add(&row("GET", "/a", Some(agent), late));
        d.add(&row("GET", "/a", Some(agent), late + 500_000));
        d.add(&row("GET", "/a\0", None, late));
        assert_eq!(d.len(Table::AgentHour), 2);
        assert_eq!(d.len(Table::AgentDay), 2);
        assert_eq!(d.len(Table::OrgDay), 2);
        // "/a\0" is cleaned to "/a": the same route as the first call.
        let eps = d.rows(Table::EndpointHour);
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].0.route, Some(("GET".into(), "/a".into())));
        assert_eq!(eps[0].1.calls, 2);
        assert_eq!(eps[0].0.hour().to_rfc3339(), "2026-11-28T23:00:00+00:00");
        let days = d.rows(Table::OrgDay);
        assert_eq!(days[0].0.date().to_string(), "2026-11-28");
        assert_eq!(days[1].0.date().to_string(), "2026-11-29");
    }

    #[test]
    fn the_last_call_is_the_latest_of_the_row_and_of_its_day() {
        let agent = Uuid::from_u128(2);
        let mut d = Deltas::default();
        // 2026-11-28 10:00:00.25 and 10:59:59.75, then 11:00:00.5 UTC.
        let ten = 1_795_860_000_250_000;
        d.add(&row("GET", "/a", Some(agent), ten + 3_599_500_000));
        d.add(&row("GET", "/a", Some(agent), ten));
        d.add(&row("GET", "/a", Some(agent), ten + 3_600_250_000));
        let hours = d.rows(Table::AgentHour);
        assert_eq!(
            hours[0].1.last_call_us,
            ten + 3_599_500_000,
            "not the last added"
        );
        assert_eq!(hours[1].1.last_call_us, ten + 3_600_250_000);
        let day = d.rows(Table::AgentDay);
        assert_eq!(day[0].1.last_call_us, ten + 3_600_250_000);
        assert_eq!(
            d.rows(Table::OrgDay)[0].1.last_call(),
            DateTime::from_timestamp_micros(ten + 3_600_250_000)
        );
        assert_eq!(Traffic::default().last_call(), None, "no call, NULL");
    }
}

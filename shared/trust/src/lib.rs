//! The trust model. An agent's score is the weighted mean of five factors, each in [0, 1] where
//! 1 is what a well-behaved agent earns, computed by [`assess`] from counts the service already
//! keeps (rollups and identity rows, gathered by the store into [`Inputs`]) and the time passed
//! in, so tests can backdate and a dry run is the same computation without the write. An active
//! admin override holds the score at its value until it expires. The policy's lifecycle and
//! alert rules are decided here too, so the scheduled recomputation, the one after a
//! `verify-action` and a dry run cannot disagree. Pure: no I/O, no SQL, no clock.
//!
//! `docs/trust.md` is the reader's account of the same model.

pub mod policy;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use policy::TrustPolicy;

/// How many days of the same hour make the volume baseline.
pub const VOLUME_BASELINE_DAYS: u32 = 7;

/// Everything the score depends on besides the policy and the time. The counts are over the
/// policy's windows; the store reads them from the rollups and identity tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub created_at: DateTime<Utc>,
    /// The agent's last call or verification.
    pub last_active: Option<DateTime<Utc>>,
    /// Verifications within the window the action's rules allowed and denied, whatever the
    /// status and score then decided.
    pub rules_allowed: i64,
    pub rules_denied: i64,
    /// Calls and errors (4xx and 5xx) within the error window.
    pub recent_calls: i64,
    pub recent_errors: i64,
    /// Calls and errors over the baseline days before the window.
    pub baseline_calls: i64,
    pub baseline_errors: i64,
    /// Calls in the last complete hour, and in the same hour of each of the seven days before.
    pub hour_calls: i64,
    pub same_hour_calls: i64,
    pub keys: KeyFacts,
    pub admin_override: Option<Override>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyFacts {
    /// When the oldest key that is neither revoked nor expired was created.
    pub oldest_active_created_at: Option<DateTime<Utc>>,
    /// Active keys that never expire.
    pub active_without_expiry: i64,
    /// Keys revoked within the revocation window.
    pub recent_revocations: i64,
}

/// An admin's override: the score it holds, why, and until when (`None`: until removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Override {
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score: f64,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Override {
    #[must_use]
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// The five factors, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Verification,
    ErrorRate,
    Volume,
    KeyHygiene,
    Activity,
}

impl Factor {
    pub const ALL: [Self; 5] = [
        Self::Verification,
        Self::ErrorRate,
        Self::Volume,
        Self::KeyHygiene,
        Self::Activity,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::ErrorRate => "error_rate",
            Self::Volume => "volume",
            Self::KeyHygiene => "key_hygiene",
            Self::Activity => "activity",
        }
    }

    fn weight(self, policy: &TrustPolicy) -> f64 {
        let w = &policy.weights;
        match self {
            Self::Verification => w.verification,
            Self::ErrorRate => w.error_rate,
            Self::Volume => w.volume,
            Self::KeyHygiene => w.key_hygiene,
            Self::Activity => w.activity,
        }
    }
}

/// One factor's value and weight, and what it was computed from, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FactorValue {
    pub factor: Factor,
    /// 0–1; 1 is what a well-behaved agent earns.
    pub value: f64,
    pub weight: f64,
    pub detail: String,
}

/// The score and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Assessment {
    /// 0–1: the override's value while one is active, otherwise the factors' weighted mean.
    pub score: f64,
    /// The factors' weighted mean, whether or not an override holds the score.
    pub computed_score: f64,
    pub factors: Vec<FactorValue>,
    /// The override in force, if any.
    pub admin_override: Option<Override>,
    pub computed_at: DateTime<Utc>,
}

/// Scores an agent. Each factor is non-increasing in its bad input (denials, errors above the
/// baseline, a volume spike, old or never-expiring keys, revocations, silence), and the score
/// is their weighted mean with non-negative weights, so worsening one never raises the score.
#[must_use]
pub fn assess(inputs: &Inputs, policy: &TrustPolicy, now: DateTime<Utc>) -> Assessment {
    let factors: Vec<FactorValue> = Factor::ALL
        .into_iter()
        .map(|factor| {
            let (value, detail) = match factor {
                Factor::Verification => verification(inputs, policy),
                Factor::ErrorRate => error_rate(inputs, policy),
                Factor::Volume => volume(inputs, policy),
                Factor::KeyHygiene => key_hygiene(inputs, policy, now),
                Factor::Activity => activity(inputs, policy, now),
            };
            FactorValue {
                factor,
                value: clamp01(value),
                weight: factor.weight(policy),
                detail,
            }
        })
        .collect();
    let total: f64 = factors.iter().map(|f| f.weight).sum();
    let computed_score = if total > 0.0 {
        clamp01(factors.iter().map(|f| f.weight * f.value).sum::<f64>() / total)
    } else {
        policy.verification_prior
    };
    let admin_override = inputs.admin_override.clone().filter(|o| o.active(now));
    Assessment {
        score: admin_override
            .as_ref()
            .map_or(computed_score, |o| clamp01(o.score)),
        computed_score,
        factors,
        admin_override,
        computed_at: now,
    }
}

/// Allowed share with a prior worth `verification_prior_weight` outcomes.
fn verification(inputs: &Inputs, policy: &TrustPolicy) -> (f64, String) {
    let allowed = inputs.rules_allowed.max(0) as f64;
    let denied = inputs.rules_denied.max(0) as f64;
    let prior = policy.verification_prior_weight;
    let value = if allowed + denied + prior > 0.0 {
        (allowed + policy.verification_prior * prior) / (allowed + denied + prior)
    } else {
        policy.verification_prior
    };
    let detail = format!(
        "{} allowed, {} denied by the actions' rules in {} days",
        inputs.rules_allowed, inputs.rules_denied, policy.verification_window_days
    );
    (value, detail)
}

/// The recent error rate above the agent's own baseline, as a share of the tolerance. Both
/// rates are smoothed toward the baseline by 20 calls' worth, so a handful of calls (or none)
/// moves it little.
fn error_rate(inputs: &Inputs, policy: &TrustPolicy) -> (f64, String) {
    const PSEUDO_CALLS: f64 = 20.0;
    let base_calls = inputs.baseline_calls.max(0) as f64;
    let base_errors = (inputs.baseline_errors.max(0) as f64).min(base_calls);
    // With no baseline at all, assume a clean one: a new agent's errors count against it.
    let baseline = base_errors / (base_calls + PSEUDO_CALLS);
    let calls = inputs.recent_calls.max(0) as f64;
    let errors = (inputs.recent_errors.max(0) as f64).min(calls);
    let recent = (errors + baseline * PSEUDO_CALLS) / (calls + PSEUDO_CALLS);
    let excess = (recent - baseline).max(0.0);
    let detail = format!(
        "{} errors in {} calls over {} h; baseline {} in {} over {} days",
        inputs.recent_errors,
        inputs.recent_calls,
        policy.error_window_hours,
        inputs.baseline_errors,
        inputs.baseline_calls,
        policy.error_baseline_days
    );
    (1.0 - excess / policy.error_tolerance, detail)
}

/// The last hour's calls over the same hour's mean, both plus one; falls linearly in the
/// ratio's logarithm from `volume_ratio_warn` (1) to `volume_ratio_max` (0). Fewer calls than
/// usual are not an anomaly here: silence is the activity factor's.
fn volume(inputs: &Inputs, policy: &TrustPolicy) -> (f64, String) {
    let mean = inputs.same_hour_calls.max(0) as f64 / f64::from(VOLUME_BASELINE_DAYS);
    let ratio = (inputs.hour_calls.max(0) as f64 + 1.0) / (mean + 1.0);
    let (warn, max) = (policy.volume_ratio_warn, policy.volume_ratio_max);
    let value = if ratio <= warn {
        1.0
    } else if ratio >= max {
        0.0
    } else {
        1.0 - (ratio / warn).ln() / (max / warn).ln()
    };
    let detail = format!(
        "{} calls in the last hour; {mean:.1} on average in the same hour over {VOLUME_BASELINE_DAYS} days",
        inputs.hour_calls
    );
    (value, detail)
}

/// Starts at 1: an active key past `max_key_age_days` costs up to 0.4 (reaching it at twice
/// the age), each never-expiring active key 0.1 (at most 0.3), each recent revocation 0.15 (at
/// most 0.3).
fn key_hygiene(inputs: &Inputs, policy: &TrustPolicy, now: DateTime<Utc>) -> (f64, String) {
    let keys = &inputs.keys;
    let max_age = f64::from(policy.max_key_age_days);
    let age_days = keys
        .oldest_active_created_at
        .map_or(0.0, |at| days_between(at, now));
    let age_cost = 0.4 * ((age_days - max_age) / max_age).clamp(0.0, 1.0);
    let expiry_cost = (0.1 * keys.active_without_expiry.max(0) as f64).min(0.3);
    let revocation_cost = (0.15 * keys.recent_revocations.max(0) as f64).min(0.3);
    let detail = format!(
        "oldest active key {age_days:.0} days old (limit {}); {} without expiry; {} revoked in {} days",
        policy.max_key_age_days,
        keys.active_without_expiry,
        keys.recent_revocations,
        policy.revocation_window_days
    );
    (1.0 - age_cost - expiry_cost - revocation_cost, detail)
}

/// 1 until `silence_days` without a call or verification (counted from creation for an agent
/// that never acted), then falling linearly to 0 at three times that.
fn activity(inputs: &Inputs, policy: &TrustPolicy, now: DateTime<Utc>) -> (f64, String) {
    let since = inputs.last_active.unwrap_or(inputs.created_at);
    let silent = days_between(since, now);
    let limit = f64::from(policy.silence_days);
    let value = 1.0 - ((silent - limit) / (2.0 * limit)).clamp(0.0, 1.0);
    let detail = match inputs.last_active {
        Some(_) => format!("last active {silent:.1} days ago (limit {limit})"),
        None => format!("never active; created {silent:.1} days ago (limit {limit})"),
    };
    (value, detail)
}

fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_seconds().max(0)) as f64 / 86_400.0
}

fn clamp01(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

impl Assessment {
    /// Whether writing this assessment over `stored` is a change: by at least the policy's
    /// step, or onto or off an override's exact value.
    #[must_use]
    pub fn moves(&self, stored: f64, policy: &TrustPolicy) -> bool {
        let delta = (self.score - stored).abs();
        delta >= policy.step - 1e-12 || (self.admin_override.is_some() && delta > 1e-9)
    }

    /// Why the score moved from `previous`, naming the factor that moved it most: the largest
    /// weighted change from `previous_factors` (the last written assessment's), or, without
    /// them, the largest weighted distance from the previous score.
    #[must_use]
    pub fn reason(&self, previous: f64, previous_factors: Option<&[FactorValue]>) -> String {
        if let Some(o) = &self.admin_override {
            return format!("override: {}", o.reason);
        }
        let total: f64 = self
            .factors
            .iter()
            .map(|f| f.weight)
            .sum::<f64>()
            .max(f64::EPSILON);
        let before = |factor: Factor| {
            previous_factors
                .and_then(|fs| fs.iter().find(|f| f.factor == factor))
                .map_or(previous, |f| f.value)
        };
        let mover = self.factors.iter().max_by(|a, b| {
            let da = a.weight * (a.value - before(a.factor)).abs();
            let db = b.weight * (b.value - before(b.factor)).abs();
            da.total_cmp(&db)
        });
        let direction = if self.score >= previous {
            "rose"
        } else {
            "fell"
        };
        match mover {
            Some(f) => format!(
                "{direction} mostly on {}: {:.2} -> {:.2} (weight {:.2})",
                f.factor.as_str(),
                before(f.factor),
                f.value,
                f.weight / total
            ),
            None => direction.to_owned(),
        }
    }

    #[must_use]
    pub fn factor(&self, factor: Factor) -> Option<f64> {
        self.factors
            .iter()
            .find(|f| f.factor == factor)
            .map(|f| f.value)
    }
}

/// What the policy does to an agent's status after an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyTransition {
    /// `pending` → `verified`: enough allowed verifications and a high enough score.
    Verify,
    /// `pending` or `verified` → `suspended`: the score fell below the floor.
    Suspend,
}

/// The policy's transition for an agent that is `pending` (`is_pending`) or `verified`; none for
/// others (the caller does not ask for suspended or revoked agents: leaving `suspended` is an
/// admin's act, `revoked` is terminal).
#[must_use]
pub fn transition(
    is_pending: bool,
    assessment: &Assessment,
    rules_allowed: i64,
    policy: &TrustPolicy,
) -> Option<PolicyTransition> {
    if policy
        .suspend_below
        .is_some_and(|floor| assessment.score < floor)
    {
        return Some(PolicyTransition::Suspend);
    }
    let auto = &policy.auto_verify;
    if is_pending
        && auto.enabled
        && rules_allowed >= i64::from(auto.min_allowed)
        && assessment.score >= auto.min_score
    {
        return Some(PolicyTransition::Verify);
    }
    None
}

/// An alert rule; at most one alert per agent and rule is open at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    ScoreBelow,
    ScoreDrop,
    ErrorRateSpike,
    VolumeAnomaly,
    Suspended,
}

impl AlertRule {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScoreBelow => "score_below",
            Self::ScoreDrop => "score_drop",
            Self::ErrorRateSpike => "error_rate_spike",
            Self::VolumeAnomaly => "volume_anomaly",
            Self::Suspended => "suspended",
        }
    }
}

/// The alert conditions an assessment meets, with a message each. `recent_high` is the highest
/// score written within the drop rule's hours (the current stored score included). Suspension
/// is raised by the transition, not here.
#[must_use]
pub fn alerts(
    assessment: &Assessment,
    recent_high: Option<f64>,
    policy: &TrustPolicy,
) -> Vec<(AlertRule, String)> {
    let rules = &policy.alerts;
    let mut out = Vec::new();
    let score = assessment.score;
    if let Some(threshold) = rules.score_below
        && score < threshold
    {
        out.push((
            AlertRule::ScoreBelow,
            format!("trust score {score:.2} is below {threshold:.2}"),
        ));
    }
    if let (Some(drop), Some(high)) = (&rules.score_drop, recent_high)
        && high - score >= drop.amount - 1e-12
    {
        out.push((
            AlertRule::ScoreDrop,
            format!(
                "trust score fell from {high:.2} to {score:.2} within {} h",
                drop.hours
            ),
        ));
    }
    for (rule, factor, threshold) in [
        (
            AlertRule::ErrorRateSpike,
            Factor::ErrorRate,
            rules.error_rate_below,
        ),
        (AlertRule::VolumeAnomaly, Factor::Volume, rules.volume_below),
    ] {
        if let (Some(threshold), Some(value)) = (threshold, assessment.factor(factor))
            && value < threshold
        {
            let detail = assessment
                .factors
                .iter()
                .find(|f| f.factor == factor)
                .map(|f| f.detail.as_str())
                .unwrap_or_default();
            out.push((
                rule,
                format!(
                    "{} factor {value:.2} is below {threshold:.2}: {detail}",
                    factor.as_str()
                ),
            ));
        }
    }
    out
}

/// Days of history an assessment at `now` reads, as the first instant a loader must fetch.
#[must_use]
pub fn read_since(policy: &TrustPolicy, now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(i64::from(policy.days_read()))
}

#[cfg(test)]
mod tests;

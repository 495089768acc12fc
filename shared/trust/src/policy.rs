//! An organization's trust policy: the factors' weights and windows, when the policy verifies or
//! suspends an agent, and which alerts it raises. Every field has a default, so an organization
//! that never set one, or a stored policy older than a new field, reads as a whole policy.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The whole policy, as `GET /api/v1/trust-policy` shows it and `PUT` replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrustPolicy {
    /// The organization's action rules: `verify-action` denies an action equal to one of these,
    /// or starting with one that ends in `*` (`delete:*`). Decided before the agent's status
    /// and score, and the only outcome the verification factor counts. At most 100, each 1–200
    /// characters.
    #[schema(max_items = 100)]
    pub denied_actions: Vec<String>,
    #[serde(deserialize_with = "object")]
    pub weights: Weights,
    /// Days of `verify-action` outcomes the verification factor counts (1–90).
    #[schema(minimum = 1, maximum = 90)]
    pub verification_window_days: u32,
    /// What the verification factor assumes before any outcome (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub verification_prior: f64,
    /// How many outcomes the prior is worth (0–1000): with 10, three denials move the factor
    /// from 0.5 to 0.38, not to 0.
    #[schema(minimum = 0.0, maximum = 1000.0)]
    pub verification_prior_weight: f64,
    /// Hours of calls whose error rate is compared with the baseline (1–168).
    #[schema(minimum = 1, maximum = 168)]
    pub error_window_hours: u32,
    /// Days before the error window that make the agent's own baseline (1–30).
    #[schema(minimum = 1, maximum = 30)]
    pub error_baseline_days: u32,
    /// How far above its baseline an agent's error rate must be to take the factor to 0
    /// (0.01–1, as a share of calls).
    #[schema(minimum = 0.01, maximum = 1.0)]
    pub error_tolerance: f64,
    /// The last complete hour's calls over the same hour's mean on the previous seven days
    /// (both plus one, so a silent baseline is not a division by zero) at which the volume
    /// factor starts to fall (1–1000).
    #[schema(minimum = 1.0, maximum = 1000.0)]
    pub volume_ratio_warn: f64,
    /// The ratio at which the volume factor reaches 0 (above `volume_ratio_warn`, at most 1e6).
    #[schema(minimum = 1.0, maximum = 1_000_000.0)]
    pub volume_ratio_max: f64,
    /// An active key older than this lowers key hygiene (1–3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub max_key_age_days: u32,
    /// Revocations within this many days lower key hygiene (1–365).
    #[schema(minimum = 1, maximum = 365)]
    pub revocation_window_days: u32,
    /// Days without a call or a verification after which activity starts to fall; it reaches 0
    /// at three times this (1–365).
    #[schema(minimum = 1, maximum = 365)]
    pub silence_days: u32,
    /// The least change of score that is written (0.001–0.5); smaller moves are not history.
    #[schema(minimum = 0.001, maximum = 0.5)]
    pub step: f64,
    #[serde(deserialize_with = "object")]
    pub auto_verify: AutoVerify,
    /// A pending or verified agent whose score falls below this is suspended; `null` never
    /// suspends by policy.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub suspend_below: Option<f64>,
    #[serde(deserialize_with = "object")]
    pub alerts: AlertRules,
}

/// The factors' weights; each 0–10, at least one above 0. The score is their weighted mean, so
/// only their ratios matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    #[schema(minimum = 0.0, maximum = 10.0)]
    pub verification: f64,
    #[schema(minimum = 0.0, maximum = 10.0)]
    pub error_rate: f64,
    #[schema(minimum = 0.0, maximum = 10.0)]
    pub volume: f64,
    #[schema(minimum = 0.0, maximum = 10.0)]
    pub key_hygiene: f64,
    #[schema(minimum = 0.0, maximum = 10.0)]
    pub activity: f64,
}

/// When the policy moves a `pending` agent to `verified`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AutoVerify {
    pub enabled: bool,
    /// Verifications the action's rules allowed within the verification window (0–100000).
    #[schema(minimum = 0, maximum = 100_000)]
    pub min_allowed: u32,
    /// The score the agent must have reached (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_score: f64,
}

/// Which conditions open an alert; `null` turns a rule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// The score is below this (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score_below: Option<f64>,
    #[serde(deserialize_with = "optional_object")]
    pub score_drop: Option<ScoreDrop>,
    /// The error-rate factor is below this (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate_below: Option<f64>,
    /// The volume factor is below this (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub volume_below: Option<f64>,
    /// The agent was suspended.
    pub suspended: bool,
}

/// The score fell by at least `amount` from its highest value within `hours`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreDrop {
    #[schema(minimum = 0.01, maximum = 1.0)]
    pub amount: f64,
    #[schema(minimum = 1, maximum = 720)]
    pub hours: u32,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            denied_actions: Vec::new(),
            weights: Weights::default(),
            verification_window_days: 7,
            verification_prior: 0.5,
            verification_prior_weight: 10.0,
            error_window_hours: 24,
            error_baseline_days: 7,
            error_tolerance: 0.25,
            volume_ratio_warn: 3.0,
            volume_ratio_max: 20.0,
            max_key_age_days: 90,
            revocation_window_days: 30,
            silence_days: 14,
            step: 0.01,
            auto_verify: AutoVerify::default(),
            suspend_below: Some(0.3),
            alerts: AlertRules::default(),
        }
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            verification: 0.35,
            error_rate: 0.2,
            volume: 0.15,
            key_hygiene: 0.15,
            activity: 0.15,
        }
    }
}

impl Default for AutoVerify {
    fn default() -> Self {
        Self {
            enabled: true,
            min_allowed: 10,
            min_score: 0.7,
        }
    }
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            score_below: Some(0.4),
            score_drop: Some(ScoreDrop {
                amount: 0.2,
                hours: 24,
            }),
            error_rate_below: Some(0.5),
            volume_below: Some(0.5),
            suspended: true,
        }
    }
}

/// A nested part of the policy, only as a JSON object: serde's derive would also take a
/// struct as an array of its fields in order (`"alerts": [null, null]`), which the published
/// schema does not allow.
fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let value = serde_json::Value::deserialize(deserializer)?;
    if !value.is_object() {
        return Err(D::Error::custom("expected a JSON object"));
    }
    T::deserialize(value).map_err(D::Error::custom)
}

/// [`object`], or `null`.
fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let value = serde_json::Value::deserialize(deserializer)?;
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(_) => T::deserialize(value).map(Some).map_err(D::Error::custom),
        _ => Err(D::Error::custom("expected a JSON object or null")),
    }
}

/// One field the policy's rules refuse, named by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl TrustPolicy {
    /// Every rule the policy breaks; empty when it may be stored. The same ranges are in the
    /// OpenAPI schema; the cross-field rules (at least one weight, `volume_ratio_max` above
    /// `volume_ratio_warn`) only here.
    #[must_use]
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Check(Vec::new());
        if self.denied_actions.len() > 100 {
            out.fail("denied_actions", "at most 100 rules");
        }
        for (i, rule) in self.denied_actions.iter().enumerate() {
            let length = rule.chars().count();
            if rule.trim().is_empty() || length > 200 || rule.contains('\0') {
                out.fail(
                    &format!("denied_actions[{i}]"),
                    "must be 1-200 characters, not blank",
                );
            } else if rule.trim_end_matches('*').contains('*') {
                out.fail(&format!("denied_actions[{i}]"), "`*` may only end a rule");
            }
        }
        let w = &self.weights;
        for (name, value) in [
            ("weights.verification", w.verification),
            ("weights.error_rate", w.error_rate),
            ("weights.volume", w.volume),
            ("weights.key_hygiene", w.key_hygiene),
            ("weights.activity", w.activity),
        ] {
            out.range(name, value, 0.0, 10.0);
        }
        if w.total() <= 0.0 {
            out.fail("weights", "at least one weight must be above 0");
        }
        out.int(
            "verification_window_days",
            self.verification_window_days,
            1,
            90,
        );
        out.range("verification_prior", self.verification_prior, 0.0, 1.0);
        out.range(
            "verification_prior_weight",
            self.verification_prior_weight,
            0.0,
            1000.0,
        );
        out.int("error_window_hours", self.error_window_hours, 1, 168);
        out.int("error_baseline_days", self.error_baseline_days, 1, 30);
        out.range("error_tolerance", self.error_tolerance, 0.01, 1.0);
        out.range("volume_ratio_warn", self.volume_ratio_warn, 1.0, 1000.0);
        out.range("volume_ratio_max", self.volume_ratio_max, 1.0, 1_000_000.0);
        if self.volume_ratio_max <= self.volume_ratio_warn {
            out.fail("volume_ratio_max", "must be above volume_ratio_warn");
        }
        out.int("max_key_age_days", self.max_key_age_days, 1, 3650);
        out.int(
            "revocation_window_days",
            self.revocation_window_days,
            1,
            365,
        );
        out.int("silence_days", self.silence_days, 1, 365);
        out.range("step", self.step, 0.001, 0.5);
        out.int(
            "auto_verify.min_allowed",
            self.auto_verify.min_allowed,
            0,
            100_000,
        );
        out.range(
            "auto_verify.min_score",
            self.auto_verify.min_score,
            0.0,
            1.0,
        );
        if let Some(floor) = self.suspend_below {
            out.range("suspend_below", floor, 0.0, 1.0);
        }
        let a = &self.alerts;
        for (name, value) in [
            ("alerts.score_below", a.score_below),
            ("alerts.error_rate_below", a.error_rate_below),
            ("alerts.volume_below", a.volume_below),
        ] {
            if let Some(value) = value {
                out.range(name, value, 0.0, 1.0);
            }
        }
        if let Some(drop) = &a.score_drop {
            out.range("alerts.score_drop.amount", drop.amount, 0.01, 1.0);
            out.int("alerts.score_drop.hours", drop.hours, 1, 720);
        }
        out.0
    }

    /// Whether the action rules allow `action`; see [`TrustPolicy::denied_actions`].
    #[must_use]
    pub fn action_allowed(&self, action: &str) -> bool {
        !self
            .denied_actions
            .iter()
            .any(|rule| match rule.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => action == rule,
            })
    }

    /// The longest window of days any factor reads: what a loader must fetch.
    #[must_use]
    pub fn days_read(&self) -> u32 {
        let error_days = self.error_window_hours.div_ceil(24) + self.error_baseline_days;
        self.verification_window_days
            .max(error_days)
            .max(crate::VOLUME_BASELINE_DAYS + 1)
    }
}

impl Weights {
    #[must_use]
    pub fn total(&self) -> f64 {
        self.verification + self.error_rate + self.volume + self.key_hygiene + self.activity
    }
}

struct Check(Vec<Invalid>);

impl Check {
    fn fail(&mut self, field: &str, message: &str) {
        self.0.push(Invalid {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    }

    fn range(&mut self, field: &str, value: f64, min: f64, max: f64) {
        // `!(a <= v)` so that NaN fails too.
        if !(min <= value && value <= max) {
            self.fail(field, &format!("must be between {min} and {max}"));
        }
    }

    fn int(&mut self, field: &str, value: u32, min: u32, max: u32) {
        if !(min..=max).contains(&value) {
            self.fail(field, &format!("must be between {min} and {max}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_valid_and_an_empty_object_reads_as_it() {
        assert!(TrustPolicy::default().validate().is_empty());
        let parsed: TrustPolicy = serde_json::from_str("{}").expect("parses");
        assert_eq!(parsed, TrustPolicy::default());
        let partial: TrustPolicy =
            serde_json::from_str(r#"{"weights": {"volume": 0}}"#).expect("parses");
        assert!(partial.weights.volume.abs() < f64::EPSILON);
        assert!((partial.weights.verification - 0.35).abs() < f64::EPSILON);
    }

    #[test]
    fn bad_values_are_named_by_their_path() {
        let mut policy = TrustPolicy {
            weights: Weights {
                verification: 0.0,
                error_rate: 0.0,
                volume: 0.0,
                key_hygiene: 0.0,
                activity: 0.0,
            },
            ..TrustPolicy::default()
        };
        policy.step = f64::NAN;
        policy.volume_ratio_max = 2.0;
        policy.alerts.score_drop = Some(ScoreDrop {
            amount: 0.0,
            hours: 0,
        });
        let fields: Vec<String> = policy.validate().into_iter().map(|i| i.field).collect();
        assert_eq!(
            fields,
            [
                "weights",
                "volume_ratio_max",
                "step",
                "alerts.score_drop.amount",
                "alerts.score_drop.hours"
            ]
        );
    }

    #[test]
    fn denied_actions_match_exactly_or_by_prefix() {
        let policy = TrustPolicy {
            denied_actions: vec!["delete:*".into(), "export:all".into()],
            ..TrustPolicy::default()
        };
        assert!(!policy.action_allowed("delete:users"));
        assert!(!policy.action_allowed("export:all"));
        assert!(policy.action_allowed("export:allx"));
        assert!(policy.action_allowed("read:users"));
        let bad = TrustPolicy {
            denied_actions: vec!["a*b".into(), " ".into()],
            ..TrustPolicy::default()
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|i| i.field).collect();
        assert_eq!(fields, ["denied_actions[0]", "denied_actions[1]"]);
    }

    #[test]
    fn nested_parts_must_be_objects() {
        for body in [
            r#"{"alerts": [null, null]}"#,
            r#"{"weights": [1, 1, 1, 1, 1]}"#,
            r#"{"auto_verify": [true]}"#,
            r#"{"alerts": {"score_drop": [0.2, 24]}}"#,
        ] {
            assert!(serde_json::from_str::<TrustPolicy>(body).is_err(), "{body}");
        }
        let off: TrustPolicy =
            serde_json::from_str(r#"{"alerts": {"score_drop": null}}"#).expect("parses");
        assert_eq!(off.alerts.score_drop, None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<TrustPolicy>(r#"{"weight": {}}"#).is_err());
    }
}

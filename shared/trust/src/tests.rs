use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn healthy() -> Inputs {
    Inputs {
        created_at: now() - Duration::days(30),
        last_active: Some(now() - Duration::hours(1)),
        rules_allowed: 40,
        rules_denied: 0,
        recent_calls: 2_000,
        recent_errors: 20,
        baseline_calls: 14_000,
        baseline_errors: 140,
        hour_calls: 80,
        same_hour_calls: 7 * 80,
        keys: KeyFacts {
            oldest_active_created_at: Some(now() - Duration::days(20)),
            active_without_expiry: 0,
            recent_revocations: 0,
        },
        admin_override: None,
    }
}

#[test]
fn a_well_behaved_agent_scores_high_and_a_new_one_sits_near_the_prior() {
    let policy = TrustPolicy::default();
    let good = assess(&healthy(), &policy, now());
    assert!(good.score > 0.9, "{good:?}");
    let new = Inputs {
        created_at: now(),
        ..Inputs::default()
    };
    let fresh = assess(&new, &policy, now());
    // Only the verification factor is unproven: 0.35 × 0.5 + 0.65.
    assert!((fresh.score - 0.825).abs() < 1e-9, "{fresh:?}");
}

#[test]
fn three_denials_do_not_swing_the_verification_factor() {
    let policy = TrustPolicy::default();
    let inputs = Inputs {
        rules_denied: 3,
        ..healthy()
    };
    let inputs = Inputs {
        rules_allowed: 0,
        ..inputs
    };
    let value = assess(&inputs, &policy, now())
        .factor(Factor::Verification)
        .expect("present");
    assert!((value - 5.0 / 13.0).abs() < 1e-9, "{value}");
}

#[test]
fn errors_count_against_the_agents_own_baseline() {
    let policy = TrustPolicy::default();
    let noisy_always = Inputs {
        recent_errors: 400,
        baseline_errors: 2_800,
        ..healthy()
    };
    let spiking = Inputs {
        recent_errors: 400,
        ..healthy()
    };
    let steady = assess(&noisy_always, &policy, now());
    let spike = assess(&spiking, &policy, now());
    assert!(steady.factor(Factor::ErrorRate).expect("present") > 0.95);
    assert!(spike.factor(Factor::ErrorRate).expect("present") < 0.5);
}

#[test]
fn a_volume_spike_against_a_silent_baseline_is_finite_and_flagged() {
    let policy = TrustPolicy::default();
    let inputs = Inputs {
        hour_calls: 500,
        same_hour_calls: 0,
        ..healthy()
    };
    let a = assess(&inputs, &policy, now());
    assert!(a.factor(Factor::Volume).expect("present").abs() < 1e-12);
    let rules: Vec<AlertRule> = alerts(&a, None, &policy)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(rules, [AlertRule::VolumeAnomaly]);
}

#[test]
fn an_override_holds_the_score_until_it_expires() {
    let policy = TrustPolicy::default();
    let held = Inputs {
        admin_override: Some(Override {
            score: 0.2,
            reason: "under investigation".into(),
            expires_at: Some(now() + Duration::hours(2)),
        }),
        ..healthy()
    };
    let during = assess(&held, &policy, now());
    assert!((during.score - 0.2).abs() < 1e-12);
    assert!(during.computed_score > 0.9);
    assert_eq!(during.reason(0.9, None), "override: under investigation");
    let after = assess(&held, &policy, now() + Duration::hours(3));
    assert!(after.admin_override.is_none());
    assert!(after.score > 0.9);
}

#[test]
fn the_reason_names_the_factor_that_moved_most() {
    let policy = TrustPolicy::default();
    let before = assess(&healthy(), &policy, now());
    let worse = Inputs {
        rules_allowed: 0,
        rules_denied: 40,
        ..healthy()
    };
    let after = assess(&worse, &policy, now());
    let reason = after.reason(before.score, Some(&before.factors));
    assert!(
        reason.starts_with("fell mostly on verification"),
        "{reason}"
    );
}

#[test]
fn the_policy_verifies_with_enough_allowed_checks_and_suspends_below_the_floor() {
    let policy = TrustPolicy::default();
    let good = assess(&healthy(), &policy, now());
    assert_eq!(
        transition(true, &good, 10, &policy),
        Some(PolicyTransition::Verify)
    );
    assert_eq!(transition(true, &good, 9, &policy), None);
    assert_eq!(transition(false, &good, 100, &policy), None);
    let bad = Inputs {
        rules_allowed: 0,
        rules_denied: 200,
        recent_errors: 2_000,
        hour_calls: 5_000,
        keys: KeyFacts {
            oldest_active_created_at: Some(now() - Duration::days(400)),
            active_without_expiry: 3,
            recent_revocations: 2,
        },
        ..healthy()
    };
    let bad = assess(&bad, &policy, now());
    assert!(bad.score < 0.3, "{bad:?}");
    assert_eq!(
        transition(false, &bad, 0, &policy),
        Some(PolicyTransition::Suspend)
    );
}

#[test]
fn a_drop_within_the_window_is_an_alert() {
    let policy = TrustPolicy::default();
    let a = Assessment {
        score: 0.6,
        ..assess(&healthy(), &policy, now())
    };
    let rules: Vec<AlertRule> = alerts(&a, Some(0.85), &policy)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(rules, [AlertRule::ScoreDrop]);
    assert!(alerts(&a, Some(0.7), &policy).is_empty());
}

fn inputs_strategy() -> impl Strategy<Value = Inputs> {
    (
        (0i64..10_000, 0i64..10_000),
        (
            0i64..100_000,
            0i64..100_000,
            0i64..1_000_000,
            0i64..1_000_000,
        ),
        (0i64..100_000, 0i64..700_000),
        (0i64..2_000, 0i64..10, 0i64..10),
        (0i64..400, 0i64..400),
    )
        .prop_map(
            |(
                (allowed, denied),
                (calls, errors, base_calls, base_errors),
                (hour, same_hour),
                (key_age, no_expiry, revoked),
                (silent, age),
            )| Inputs {
                created_at: now() - Duration::days(age + silent),
                last_active: (silent % 3 != 0).then(|| now() - Duration::days(silent)),
                rules_allowed: allowed,
                rules_denied: denied,
                recent_calls: calls,
                recent_errors: errors.min(calls),
                baseline_calls: base_calls,
                baseline_errors: base_errors.min(base_calls),
                hour_calls: hour,
                same_hour_calls: same_hour,
                keys: KeyFacts {
                    oldest_active_created_at: (key_age > 0)
                        .then(|| now() - Duration::days(key_age)),
                    active_without_expiry: no_expiry,
                    recent_revocations: revoked,
                },
                admin_override: None,
            },
        )
}

fn policy_strategy() -> impl Strategy<Value = TrustPolicy> {
    (
        0.0f64..10.0,
        0.0f64..10.0,
        0.0f64..10.0,
        0.0f64..10.0,
        0.01f64..10.0,
    )
        .prop_map(
            |(verification, error_rate, volume, key_hygiene, activity)| TrustPolicy {
                weights: policy::Weights {
                    verification,
                    error_rate,
                    volume,
                    key_hygiene,
                    activity,
                },
                ..TrustPolicy::default()
            },
        )
}

proptest! {
    #[test]
    fn the_score_and_every_factor_stay_within_0_and_1(inputs in inputs_strategy(), policy in policy_strategy()) {
        let a = assess(&inputs, &policy, now());
        prop_assert!((0.0..=1.0).contains(&a.score));
        for f in &a.factors {
            prop_assert!((0.0..=1.0).contains(&f.value), "{f:?}");
        }
    }

    #[test]
    fn worsening_one_bad_input_never_raises_the_score(
        inputs in inputs_strategy(),
        policy in policy_strategy(),
        which in 0usize..8,
        by in 1i64..1_000,
    ) {
        let mut worse = inputs.clone();
        match which {
            0 => worse.rules_denied += by,
            1 => {
                worse.recent_calls += by;
                worse.recent_errors += by;
            }
            2 => worse.recent_errors = (worse.recent_errors + by).min(worse.recent_calls),
            3 => worse.hour_calls += by,
            4 => worse.keys.active_without_expiry += by,
            5 => worse.keys.recent_revocations += by,
            6 => {
                worse.keys.oldest_active_created_at =
                    Some(worse.keys.oldest_active_created_at.unwrap_or(now()) - Duration::days(by));
            }
            _ => {
                let since = worse.last_active.unwrap_or(worse.created_at) - Duration::days(by);
                worse.last_active = Some(since);
                worse.created_at = worse.created_at.min(since);
            }
        }
        let before = assess(&inputs, &policy, now()).score;
        let after = assess(&worse, &policy, now()).score;
        prop_assert!(after <= before + 1e-12, "{before} -> {after} on {which}");
    }

    #[test]
    fn the_same_inputs_give_the_same_assessment(inputs in inputs_strategy()) {
        let policy = TrustPolicy::default();
        let a = assess(&inputs, &policy, now());
        prop_assert_eq!(&a, &assess(&inputs, &policy, now()));
        prop_assert!(!a.moves(a.score, &policy));
    }
}

//! Field checks agent bodies share: a bounded JSON object, a score in [0, 1].

use crate::routes::validation::FieldErrors;

const MAX_METADATA_BYTES: usize = 16 * 1024;

/// `metadata` and `context`: a JSON object of bounded size.
pub(super) fn check_object(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&serde_json::Value>,
) {
    if let Some(value) = value {
        errors.check(value.is_object(), field, "must be a JSON object");
        let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
        errors.check(size <= MAX_METADATA_BYTES, field, "must be at most 16 KiB");
    }
}

pub(super) fn valid_score(score: f64) -> bool {
    score.is_finite() && (0.0..=1.0).contains(&score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_outside_the_unit_interval_are_invalid() {
        assert!(valid_score(0.0) && valid_score(1.0) && valid_score(0.73));
        assert!(!valid_score(-0.01) && !valid_score(1.01) && !valid_score(f64::NAN));
    }
}

//! Checks of request bodies that every resource shares: field errors collected into one 422, and
//! the plausibility of an email address.

use crate::error::ApiError;

/// Collects field errors, so a request learns everything wrong with it at once.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(std::collections::BTreeMap<String, String>);

impl FieldErrors {
    pub fn check(&mut self, ok: bool, field: &str, problem: &str) {
        if !ok {
            self.0
                .entry(field.to_owned())
                .or_insert_with(|| problem.to_owned());
        }
    }

    /// A text field: at most `max` characters as sent, and not blank (it is stored trimmed).
    /// Both halves are what JSON Schema can state (`maxLength`, a pattern), so the document
    /// says exactly this rule.
    pub fn text(&mut self, value: &str, field: &str, max: usize) {
        self.check(
            !value.trim().is_empty() && value.chars().count() <= max,
            field,
            &format!("must be 1 to {max} characters and not blank"),
        );
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation { fields: self.0 })
        }
    }
}

/// A plausible address: one `@` with text on both sides, no spaces. Deliverability is not our
/// business; typos that make an address unusable are.
pub(crate) fn valid_email(email: &str) -> bool {
    let within = email.chars().count() <= 320;
    let email = email.trim();
    within
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_one_at_and_no_spaces() {
        assert!(valid_email("a@b"));
        assert!(valid_email(" admin@localhost "));
        assert!(!valid_email("no-at"));
        assert!(!valid_email("@domain"));
        assert!(!valid_email("local@"));
        assert!(!valid_email("a b@c"));
        assert!(!valid_email("a@b@c"));
    }
}

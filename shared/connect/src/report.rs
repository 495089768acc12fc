//! Reporting an error whole: the message and every cause under it on one line, for logs in
//! either format (the JSON formatter prints an error value's own message only) and for the
//! binary's last word. Written here because every crate that talks to the database reports its
//! errors this way; no logging crate does it for `tracing`'s JSON output.

use std::fmt;

/// Displays an error and its sources joined with ": ", leaving out a cause whose text an outer
/// message already quotes (driver errors print their source inside their own message).
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        for cause in std::iter::successors(Some(self.0), |e| e.source()) {
            let text = cause.to_string();
            if line.contains(&text) {
                continue;
            }
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the batch")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("quoting: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once() {
        let outer = Outer(std::io::Error::other("connection reset"));
        assert_eq!(
            Causes(&outer).to_string(),
            "writing the batch: connection reset"
        );
        let quoting = Quoting(std::io::Error::other("connection reset"));
        assert_eq!(Causes(&quoting).to_string(), "quoting: connection reset");
    }
}

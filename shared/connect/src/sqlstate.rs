//! What a PostgreSQL error's SQLSTATE means to its caller, in one table shared by the request
//! pool (sqlx, in `aim-store`) and the analytics writers (tokio-postgres, in `aim-pipeline`).
//! The two ask different questions on purpose: a request asks "is the database unavailable,
//! so answer 503 and retry later?"; a writer asks "may this batch be written later, so spool
//! it instead of dropping it?", and keeps more (deadlocks, lock and statement timeouts, a
//! rotated password) since the only alternative for it is losing calls.

/// How a SQLSTATE is read; see [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The server is shutting down or not yet accepting connections (57P01–57P05): an outage.
    ServerGoingAway,
    /// A lost connection (08), exhausted resources (53), an operator or timeout cancelling the
    /// statement (57 but 57P), a system error (58), a rolled-back transaction (40: deadlock,
    /// serialization) or a lock not granted in time (55P03): nothing about the rows.
    Retryable,
    /// Authentication or authorization refused (28): configuration, fatal at start-up.
    Authentication,
    /// Anything else: the server judged the statement or its data (22, 23, 42, …).
    ContentRefused,
}

/// The class of a five-character SQLSTATE.
pub fn classify(code: &str) -> Class {
    if code.starts_with("57P") {
        Class::ServerGoingAway
    } else if code.starts_with("28") {
        Class::Authentication
    } else if code == "55P03"
        || ["08", "53", "57", "58", "40"]
            .iter()
            .any(|c| code.starts_with(c))
    {
        Class::Retryable
    } else {
        Class::ContentRefused
    }
}

/// For requests: the database is unavailable (503, retry later), not faulty (500).
pub fn is_unavailable(code: &str) -> bool {
    classify(code) == Class::ServerGoingAway
}

/// For the analytics writers: the batch may succeed later, so it is spooled, not dropped. A
/// password rotated under a running service counts too: its batches wait in the spool (a bad
/// password at start-up stops the service before any batch is taken).
pub fn is_transient_for_writer(code: &str) -> bool {
    !is_content_refused(code)
}

/// For start-up and the command line: the configuration is wrong (a password, a role), and
/// waiting will not fix it.
pub fn is_fatal(code: &str) -> bool {
    classify(code) == Class::Authentication
}

/// The server judged the statement or its data: retrying the same batch can never succeed.
pub fn is_content_refused(code: &str) -> bool {
    classify(code) == Class::ContentRefused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_going_away_is_an_outage_for_both() {
        for code in ["57P01", "57P02", "57P03"] {
            assert_eq!(classify(code), Class::ServerGoingAway, "{code}");
            assert!(
                is_unavailable(code) && is_transient_for_writer(code),
                "{code}"
            );
        }
    }

    #[test]
    fn retryable_states_are_kept_by_writers_but_are_not_outages() {
        // connection failure, too many connections, disk full, statement timeout, I/O error,
        // deadlock, serialization failure, lock timeout
        for code in [
            "08006", "53300", "53100", "57014", "58030", "40P01", "40001", "55P03",
        ] {
            assert_eq!(classify(code), Class::Retryable, "{code}");
            assert!(
                is_transient_for_writer(code) && !is_unavailable(code),
                "{code}"
            );
        }
    }

    #[test]
    fn authentication_failures_are_configuration() {
        for code in ["28P01", "28000"] {
            assert_eq!(classify(code), Class::Authentication, "{code}");
            assert!(
                is_transient_for_writer(code) && !is_unavailable(code),
                "{code}"
            );
            assert!(is_fatal(code) && !is_content_refused(code), "{code}");
        }
    }

    #[test]
    fn content_the_server_refuses_is_neither() {
        // bad encoding, unique violation, undefined table, other lock-related 55 states
        for code in ["22021", "23505", "42P01", "55000", "55006"] {
            assert_eq!(classify(code), Class::ContentRefused, "{code}");
            assert!(
                !is_transient_for_writer(code) && !is_unavailable(code),
                "{code}"
            );
            assert!(is_content_refused(code) && !is_fatal(code), "{code}");
        }
    }
}

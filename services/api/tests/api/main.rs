//! Integration tests of the `aim` service: the real router driven with `oneshot`, a real
//! PostgreSQL database per test, and the real binary where the process itself is under test.

mod binary;
mod errors;
mod health;
mod helpers;
mod schema;

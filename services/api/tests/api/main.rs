//! Integration tests of the `aim` service: the real router driven with `oneshot`, a real
//! PostgreSQL database per test, and the real binary where the process itself is under test.

mod agents;
mod analytics_api;
mod analytics_ingest;
mod audit;
mod auth;
mod binary;
mod breaker;
mod contract;
mod dashboard;
mod errors;
mod health;
mod helpers;
mod keys;
mod maintenance;
mod openapi;
mod operations;
mod roles;
mod schema;
mod security;
mod statements;
mod tenancy;
mod tls;
mod trust;
mod users;
mod verifications;
mod webhooks;

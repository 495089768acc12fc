//! What every suite uses: the service's process ([`service`]), an HTTP client and the metrics
//! scrape ([`http`]), the load driver ([`load`]), the latency probe ([`probe`]), the exact oracle
//! ([`oracle`]), the figures a suite prints ([`report`]), and a suite's set-up and end
//! ([`suite`]). Suites call the harness; the harness never calls a suite.

pub(crate) mod http;
pub(crate) mod load;
pub(crate) mod oracle;
pub(crate) mod probe;
pub(crate) mod report;
pub(crate) mod service;
pub(crate) mod suite;

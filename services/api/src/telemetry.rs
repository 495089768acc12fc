//! Logging set-up, to standard error so that command output on standard output stays clean:
//! human-readable by default, one JSON object per line with
//! `AIM_LOG_FORMAT=json`. Request fields (id, route) come from the request span, so every line
//! a request logs carries them.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber.
///
/// # Errors
/// When `RUST_LOG` is not a valid filter or a subscriber is already installed.
pub fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("RUST_LOG={:?} is not a valid filter", config.log_filter))?;
    let registry = tracing_subscriber::registry().with(filter);
    match config.log_format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    }
    .context("installing the log subscriber")
}

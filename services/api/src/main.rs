//! The `aim` binary: parse the command line and the environment, set up logging, hand over to
//! the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = aim_api::cli::Cli::parse();
    let result = match aim_api::Config::from_env() {
        Ok(config) => match aim_api::telemetry::init_logging(&config) {
            Ok(()) => aim_api::cli::execute(cli, config).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(anyhow::Error::new(e).context("reading the configuration")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, from what we were doing down to the root cause, so an operator reads
            // "…: password authentication failed for user \"aim\"" without scrolling.
            eprintln!("aim: error: {}", aim_connect::Causes(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

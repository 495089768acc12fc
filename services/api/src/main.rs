//! The `aim` binary: parse the command line and the environment, set up logging, hand over to
//! the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = aim_api::cli::Cli::parse();
    let config = aim_api::Config::from_env().context("reading the configuration")?;
    aim_api::telemetry::init_logging(&config)?;
    aim_api::cli::execute(cli, config).await
}

//! The `aim` command line. With no subcommand, `aim` serves, so `cargo run --release` runs the
//! service.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::database::Database;

#[derive(Debug, Parser)]
#[command(name = "aim", version, about = "AIM: Agent Identity Management API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API (the default). Configured by environment variables: docs/configuration.md.
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Create an organization and its admin; prints a generated password once when none is
    /// given.
    Bootstrap {
        /// The organization's name.
        #[arg(long)]
        org: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// The admin's password (at least 12 characters); generated when omitted.
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// List every migration as applied or pending; exits 1 if an applied one was modified.
    Status,
}

/// Runs the command line's choice.
///
/// # Errors
/// Whatever stopped the command, with context.
pub async fn execute(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate { action } => {
            let database = Database::open_shared(&config).await?;
            let result = migrate(&config, &database, action).await;
            let closed = database.close().await;
            let code = result?;
            closed?;
            Ok(code)
        }
        Command::Bootstrap {
            org,
            email,
            password,
        } => {
            let database = Database::open_shared(&config).await?;
            let result = bootstrap(&config, &database, &org, &email, password).await;
            let closed = database.close().await;
            result?;
            closed?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn bootstrap(
    config: &Config,
    database: &Database,
    org: &str,
    email: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let pool = aim_store::connect(
        database.url(),
        &config.pool_settings(),
        config.db_connect_wait,
    )
    .await
    .context("connecting to the database")?;
    aim_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    let passwords = crate::auth::password::Passwords::new(1)?;
    let made = crate::bootstrap::create(
        &pool,
        &passwords,
        org,
        email,
        password.map(secrecy::SecretString::from),
    )
    .await
    .context("creating the organization and its admin")?;
    println!(
        "organization {} ({})\nadmin        {} ({})",
        made.organization.name, made.organization.id, made.admin.email, made.admin.id
    );
    if let Some(password) = made.generated_password {
        use secrecy::ExposeSecret;
        println!(
            "password     {}  (shown only once)",
            password.expose_secret()
        );
    }
    pool.close().await;
    Ok(())
}

async fn migrate(
    config: &Config,
    database: &Database,
    action: MigrateAction,
) -> anyhow::Result<ExitCode> {
    let pool = aim_store::connect(
        database.url(),
        &config.pool_settings(),
        config.db_connect_wait,
    )
    .await
    .context("connecting to the database")?;
    let code = match action {
        MigrateAction::Up => {
            aim_store::migrate(&pool)
                .await
                .context("applying migrations")?;
            println!("all migrations applied");
            ExitCode::SUCCESS
        }
        MigrateAction::Status => {
            let statuses = aim_store::migration_status(&pool)
                .await
                .context("reading the migration ledger")?;
            let mut modified = false;
            for m in &statuses {
                let state = match &m.state {
                    aim_store::MigrationState::Applied { on } => {
                        format!("applied  {}", on.format("%Y-%m-%d %H:%M:%SZ"))
                    }
                    aim_store::MigrationState::Pending => "pending".to_owned(),
                    aim_store::MigrationState::Modified => {
                        modified = true;
                        "MODIFIED since it was applied".to_owned()
                    }
                };
                println!("{:>14}  {:<24}  {state}", m.version, m.description);
            }
            if modified {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    pool.close().await;
    Ok(code)
}

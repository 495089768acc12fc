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
    /// Data retention.
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Check or repair the rollup tables against the raw `api_calls` rows.
    Rollups {
        #[command(subcommand)]
        action: RollupAction,
    },
    /// The analytics spools of this data folder.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
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
pub enum SpoolAction {
    /// Events PostgreSQL refused, kept in AIM_ANALYTICS_DEAD_LETTER_DIR. Takes the folder's
    /// lock, so it refuses to run beside the service that uses it: stop that replica first.
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Every kept batch: its id, events and when it was kept.
    List,
    /// Write every kept batch again (after the fix), exactly once through the batch ledger;
    /// batches still refused stay. Exits 1 if any is still refused.
    Replay,
    /// Delete every kept batch on purpose.
    Discard {
        /// Confirms the deletion; without it the command only says what it would delete.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// Drop `api_calls` partitions older than AIM_RETENTION_DAYS and rollups older than
    /// AIM_ROLLUP_RETENTION_DAYS, once, and print what was dropped.
    Run,
}

#[derive(Debug, Subcommand)]
pub enum RollupAction {
    /// Recompute every rollup of the given UTC days from `api_calls` and print each difference;
    /// exits 1 if there is any.
    Verify {
        /// First day, `YYYY-MM-DD` (default: 30 days ago).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, inclusive (default: today).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Replace the rollups' traffic columns of the given UTC days with what `api_calls` says.
    Rebuild {
        #[arg(long)]
        from: chrono::NaiveDate,
        #[arg(long)]
        to: chrono::NaiveDate,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// List every migration as applied or pending; exits 1 if an applied one was modified.
    Status,
    /// Revert every applied migration newer than VERSION (newest first), deleting what those
    /// migrations hold. Run it with the image that applied them, before rolling back to an
    /// older image: docs/operations.md, "Rolling back".
    Down {
        /// The version to stay at (it remains applied); `0` reverts everything.
        #[arg(long = "to", value_name = "VERSION")]
        to: i64,
        /// Confirms that the data of the reverted migrations may be deleted; without it the
        /// command only lists what it would revert.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs the command line's choice.
///
/// # Errors
/// Whatever stopped the command, with context.
pub async fn execute(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    // Before any connection: every TLS session of the process uses this one provider.
    aim_connect::install_crypto_provider();
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
        Command::Retention {
            action: RetentionAction::Run,
        } => {
            let database = Database::open_shared(&config).await?;
            let result = retention(&config, &database).await;
            let closed = database.close().await;
            result?;
            closed?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollups { action } => {
            let database = Database::open_shared(&config).await?;
            let result = rollups(&database, action).await;
            let closed = database.close().await;
            let code = result?;
            closed?;
            Ok(code)
        }
        Command::Spool {
            action: SpoolAction::DeadLetter { action },
        } => dead_letter(&config, action).await,
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

async fn dead_letter(config: &Config, action: DeadLetterAction) -> anyhow::Result<ExitCode> {
    let dir = &config.analytics.pipeline.dead_letter_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = aim_local_pg::DataDirLock::acquire(dir).with_context(|| {
        format!(
            "{} is in use: stop the aim that uses it (each replica has its own) and run this again",
            dir.display()
        )
    })?;
    match action {
        DeadLetterAction::List => {
            let kept = aim_pipeline::dead_letter::list(dir).context("reading the folder")?;
            for k in &kept {
                let at = chrono::DateTime::from_timestamp_millis(k.kept_at_ms).unwrap_or_default();
                println!(
                    "{}  {} events  kept {}",
                    k.batch_id,
                    k.events,
                    at.to_rfc3339()
                );
            }
            let events: usize = kept.iter().map(|k| k.events).sum();
            println!(
                "{} batches, {events} events in {}",
                kept.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterAction::Replay => {
            let database = Database::open_shared(config).await?;
            let client = database.client().await?;
            let result = aim_pipeline::dead_letter::replay(dir, &client).await;
            drop(client);
            let closed = database.close().await;
            let replayed = result.context("replaying the dead-letter spool")?;
            closed?;
            println!(
                "written {}, already written before {}, still refused {}",
                replayed.written, replayed.duplicate, replayed.still_refused
            );
            Ok(if replayed.still_refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DeadLetterAction::Discard { yes } => {
            if !yes {
                let kept = aim_pipeline::dead_letter::list(dir).context("reading the folder")?;
                let events: usize = kept.iter().map(|k| k.events).sum();
                println!(
                    "would delete {} batches, {events} events; add --yes to delete them",
                    kept.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let events = aim_pipeline::dead_letter::discard(dir).context("discarding")?;
            tracing::warn!(events, dir = %dir.display(), "dead-lettered analytics events discarded by an operator");
            println!("deleted {events} events");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn retention(config: &Config, database: &Database) -> anyhow::Result<()> {
    let pool = database.pool(config).await?;
    let dropped = aim_store::maintenance::retention(
        &pool,
        chrono::Utc::now().date_naive(),
        config.maintenance.retention_days,
        config.maintenance.rollup_retention_days,
    )
    .await
    .context("running retention")?;
    if dropped.dropped_partitions.is_empty() {
        println!(
            "no api_calls partition older than {} days",
            config.maintenance.retention_days
        );
    }
    for name in &dropped.dropped_partitions {
        println!("dropped {name}");
    }
    println!(
        "deleted {} rollup rows older than {} days",
        dropped.rollup_rows_deleted, config.maintenance.rollup_retention_days
    );
    pool.close().await;
    Ok(())
}

async fn rollups(database: &Database, action: RollupAction) -> anyhow::Result<ExitCode> {
    let mut client = database.client().await?;
    let today = chrono::Utc::now().date_naive();
    match action {
        RollupAction::Verify { from, to } => {
            let to = to.unwrap_or(today);
            let from = from.unwrap_or(to - chrono::Days::new(30));
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let differences = aim_pipeline::rollup::verify::verify(&client, from, to)
                .await
                .context("verifying the rollups")?;
            for difference in &differences {
                println!("{difference}");
            }
            if differences.is_empty() {
                println!("rollups match api_calls from {from} to {to}");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} rollup rows differ from api_calls", differences.len());
                Ok(ExitCode::FAILURE)
            }
        }
        RollupAction::Rebuild { from, to } => {
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let rows = aim_pipeline::rollup::verify::rebuild(&mut client, from, to)
                .await
                .context("rebuilding the rollups")?;
            println!("rebuilt {rows} rollup rows from api_calls, {from} to {to}");
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
    let pool = database.pool(config).await?;
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
    let pool = database.pool(config).await?;
    let code = match action {
        MigrateAction::Up => {
            aim_store::migrate(&pool)
                .await
                .context("applying migrations")?;
            println!("all migrations applied");
            ExitCode::SUCCESS
        }
        MigrateAction::Down { to, yes } => {
            let doomed = aim_store::newer_than(&pool, to)
                .await
                .with_context(|| format!("listing the migrations newer than {to}"))?;
            if doomed.is_empty() {
                println!("nothing to revert: no applied migration is newer than {to}");
                ExitCode::SUCCESS
            } else if !yes {
                println!("would revert, deleting what each holds:");
                for m in &doomed {
                    println!("{:>14}  {}", m.version, m.description);
                }
                println!("rerun with --yes to revert them");
                ExitCode::FAILURE
            } else {
                let reverted = aim_store::migrate_down(&pool, to)
                    .await
                    .with_context(|| format!("reverting migrations down to {to}"))?;
                for version in &reverted {
                    println!("reverted {version}");
                }
                println!("the schema is at {to}");
                ExitCode::SUCCESS
            }
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

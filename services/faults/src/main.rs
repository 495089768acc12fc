//! Fault suites for `aim serve`, each against a private PostgreSQL cluster the suite starts
//! itself, under load at 80% of the rate the machine sustains (measured first):
//!
//! ```sh
//! cargo build --release -p aim-api -p aim-faults
//! target/release/aim-faults --help    # the suites, one line each
//! target/release/aim-faults restart   # PostgreSQL restarted 10 times in 60 s
//! target/release/aim-faults sigterm   # SIGTERM under load
//! target/release/aim-faults kill9     # kill -9 20 times, restarted each time
//! target/release/aim-faults slowdb    # tables locked for 10 s, then writes delayed, under load
//! target/release/aim-faults spoolfull # a 2 MiB spool while the database is down for 15 s
//! target/release/aim-faults replicas  # three replicas on one database, the load spread
//! target/release/aim-faults corruptspool # a damaged spool replayed after a restart
//! ```
//!
//! The oracle is exact: every request carries a unique `x-request-id`; the driver keeps the ids
//! of the requests that got an answer; afterwards the set difference against
//! `api_calls.request_id` gives the lost and the duplicated calls, and the drop counters must
//! account for every lost one. Loopback only; every loop is bounded in time.

//!
//! The harness is in [`harness`], each suite in a module of [`suites`].

mod harness;
mod suites;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let name = std::env::args().nth(1).unwrap_or_default();
    match name.as_str() {
        // The latency probe, a process of its own started by the harness.
        "probe" => {
            harness::probe::probe_main().await?;
            return Ok(ExitCode::SUCCESS);
        }
        "-h" | "--help" | "help" => {
            println!("{}", usage());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let Some(entry) = suites::find(&name) else {
        anyhow::bail!("no suite named {name:?}\n{}", usage());
    };
    println!(
        "== {} ({})",
        entry.name,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let passed = (entry.run)(harness::suite::suite().await?).await?;
    println!("{}", if passed { "PASSED" } else { "FAILED" });
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn usage() -> String {
    let mut text = String::from("usage: aim-faults SUITE\n\nsuites:\n");
    for entry in suites::ALL {
        text.push_str(&format!("  {:<13} {}\n", entry.name, entry.summary));
    }
    text
}

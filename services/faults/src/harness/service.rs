//! One `aim serve` process under test: started, signalled, restarted, measured.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::http::{Http, get};

pub(crate) const EMAIL: &str = "faults@example.test";

pub(crate) const PASSWORD: &str = "fault-suite-password";

pub(crate) const JWT_SECRET: &str = "fault-suite-secret-of-at-least-32-bytes";

/// One `aim serve` process on fixed ports and a fixed data folder, so a restart is the same
/// service with the same spool.
pub(crate) struct Service {
    pub(crate) binary: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: String,
    pub(crate) port: u16,
    pub(crate) metrics_port: u16,
    pub(crate) child: Option<tokio::process::Child>,
    pub(crate) log: PathBuf,
    /// Extra settings a suite needs (a small spool, say).
    pub(crate) env: Vec<(String, String)>,
}

impl Service {
    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it answers `/health/ready`; returns how long it took.
    pub(crate) async fn start(&mut self, http: &Http) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new(&self.binary)
            .arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("AIM_DATA_DIR", &self.data_dir)
            .env("AIM_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "AIM_METRICS_LISTEN",
                format!("127.0.0.1:{}", self.metrics_port),
            )
            .env("AIM_ADMIN_EMAIL", EMAIL)
            .env("AIM_ADMIN_PASSWORD", PASSWORD)
            .env("AIM_AGENT_RATE_LIMIT_PER_S", "0")
            .env("AIM_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) =
                get(http, &format!("{}/health/ready", self.base()), None, None).await
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "aim did not become ready within 60 s; the end of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    pub(crate) fn pid(&self) -> Option<i32> {
        self.child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .and_then(|id| i32::try_from(id).ok())
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("the service is not running")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
        Ok(())
    }

    pub(crate) async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("the service is not running")?;
        Ok(tokio::time::timeout(Duration::from_secs(30), child.wait()).await??)
    }

    /// Peak resident memory of the running process, from `/proc`.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

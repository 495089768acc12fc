//! The cluster's lifecycle: initialise once, start (or adopt a server a crash left running),
//! hand out its URL, stop on exit.
//!
//! Layout under the data folder: `pg/` (the cluster), `run/` (its Unix socket, unless that
//! path would be too long, see `layout::socket_dir`), `postgres.log`, `aim.lock`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::process::Command;

use crate::binaries::Binaries;
use crate::error::Error;
use crate::layout::{Layout, SUPERUSER};
use crate::lock::DataDirLock;
use crate::privileges::RunAs;

/// Settings aim owns are kept in their own file, rewritten at every start, so an operator's
/// edits to `postgresql.conf` survive.
const AIM_CONF: &str = "aim.conf";
const START_TIMEOUT_S: &str = "60";
const STOP_TIMEOUT_S: &str = "30";

/// How [`LocalCluster::restart`] stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Sessions are rolled back, a checkpoint is written.
    Fast,
    /// The server stops at once, as in a crash; the next start recovers from the WAL.
    Immediate,
}

/// What the cluster should look like; read from the service's configuration.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `$AIM_DATA_DIR`; made absolute before use.
    pub data_dir: PathBuf,
    /// Also listen on `127.0.0.1:<port>`; by default only the Unix socket is open.
    pub tcp_port: Option<u16>,
    /// The database the service uses; the caller creates it through [`LocalCluster::admin_url`].
    pub database: String,
    /// The `PATH` to search for the server binaries.
    pub path_var: Option<OsString>,
    /// Runs the server's commands, and so the server, at this lower CPU priority (`nice -n`):
    /// a harness that shares few cores between the service and its database uses it so the
    /// database's own bursts (a shutdown checkpoint, crash recovery) yield to the service, as
    /// they would on a machine of their own. `None` runs them as this process does.
    pub niceness: Option<u8>,
}

/// How a process got hold of a cluster: as its owner (it started or adopted the server and
/// stops it), or as a guest of another `aim` that owns it (commands such as `aim migrate
/// status` run beside `aim serve`).
#[derive(Debug)]
pub enum Attached {
    Owner(Box<LocalCluster>),
    Guest { url: String },
}

impl Attached {
    pub fn url(&self) -> &str {
        match self {
            Self::Owner(cluster) => cluster.url(),
            Self::Guest { url } => url,
        }
    }
}

/// A running private cluster owned by this process. Call [`LocalCluster::stop`] on the way out;
/// dropping it unstopped (an early error, a panic) stops the server too, synchronously.
#[derive(Debug)]
pub struct LocalCluster {
    layout: Layout,
    binaries: Binaries,
    run_as: Option<RunAs>,
    url: String,
    /// Released last, after the server has stopped, so no second process can start the same
    /// cluster while ours is shutting down.
    _lock: DataDirLock,
    stopped: bool,
}

impl LocalCluster {
    /// Takes the data folder's lock, then initialises the cluster if needed and starts it (or
    /// adopts a server left running by a crash of the previous owner).
    ///
    /// # Errors
    /// [`Error::Locked`] when another `aim` owns the folder; the other variants when the
    /// binaries, the `postgres` user, the folders or the server itself fail.
    pub async fn start(options: &ClusterOptions) -> Result<Self, Error> {
        let layout = prepare(options)?;
        let lock = DataDirLock::acquire(&layout.data_dir)?;
        Self::start_locked(options, layout, lock).await
    }

    /// Like [`LocalCluster::start`], except that a folder owned by another running `aim` is not
    /// an error: its server is used as a guest, without starting or stopping it.
    ///
    /// # Errors
    /// As [`LocalCluster::start`]; [`Error::Locked`] only when the owner's server is not up.
    pub async fn attach(options: &ClusterOptions) -> Result<Attached, Error> {
        let layout = prepare(options)?;
        match DataDirLock::acquire(&layout.data_dir) {
            Ok(lock) => Ok(Attached::Owner(Box::new(
                Self::start_locked(options, layout, lock).await?,
            ))),
            Err(Error::Locked { .. }) if layout.socket_file().exists() => Ok(Attached::Guest {
                url: layout.url_for(&layout.database),
            }),
            Err(e) => Err(e),
        }
    }

    async fn start_locked(
        options: &ClusterOptions,
        layout: Layout,
        lock: DataDirLock,
    ) -> Result<Self, Error> {
        let binaries = Binaries::locate(options.path_var.as_deref())?;
        let run_as = RunAs::for_current_process()?;
        if let Some(run_as) = &run_as {
            run_as.check_reachable(&layout.data_dir)?;
        }
        let mut cluster = Self {
            url: layout.url_for(&layout.database),
            layout,
            binaries,
            run_as,
            _lock: lock,
            // Nothing to stop until the server is known to be running.
            stopped: true,
        };
        cluster.prepare_folders()?;
        cluster.init_if_needed().await?;
        cluster.write_settings()?;
        cluster.start_or_adopt().await?;
        cluster.stopped = false;
        Ok(cluster)
    }

    /// The service's database, through the Unix socket.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `postgres` maintenance database, for creating the service's database.
    pub fn admin_url(&self) -> String {
        self.layout.url_for("postgres")
    }

    /// The cluster's folder, for messages and operators.
    pub fn pgdata(&self) -> &Path {
        &self.layout.pgdata
    }

    /// `127.0.0.1:<port>` when a TCP listener was asked for.
    pub fn tcp_port(&self) -> Option<u16> {
        self.layout.tcp.then_some(self.layout.port)
    }

    /// Stops the server with a fast shutdown (open sessions are rolled back) and waits for it.
    ///
    /// # Errors
    /// [`Error::Command`] when `pg_ctl stop` fails or times out.
    pub async fn stop(mut self) -> Result<(), Error> {
        let output = self
            .pg_ctl(&["stop", "-m", "fast", "-w", "-t", STOP_TIMEOUT_S])
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.pg_ctl))?;
        self.stopped = true;
        self.check("pg_ctl stop", &output)
    }

    /// Stops the server with `mode` (`fast`, or `immediate`: a crash, recovered on the next
    /// start), leaves it down for `down_for`, and starts it again: what the fault suites do to
    /// the service's database.
    ///
    /// # Errors
    /// [`Error::Command`] when `pg_ctl` fails or times out.
    pub async fn restart(
        &self,
        mode: ShutdownMode,
        down_for: std::time::Duration,
    ) -> Result<(), Error> {
        let mode = match mode {
            ShutdownMode::Fast => "fast",
            ShutdownMode::Immediate => "immediate",
        };
        let output = self
            .pg_ctl(&["stop", "-m", mode, "-w", "-t", STOP_TIMEOUT_S])
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.pg_ctl))?;
        self.check("pg_ctl stop", &output)?;
        tokio::time::sleep(down_for).await;
        let mut start = self.pg_ctl(&["start", "-w", "-t", START_TIMEOUT_S]);
        start.arg("-l").arg(&self.layout.log_file);
        let output = start
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.pg_ctl))?;
        self.check("pg_ctl start", &output)
    }

    /// Writes a file the server reads (`pg_hba.conf`, a certificate, its key) into the cluster's
    /// folder with `mode`, owned by the server's user: PostgreSQL refuses a private key that
    /// anyone else can read. Takes effect at the next [`LocalCluster::restart`].
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written or handed over.
    pub fn write_file(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf, Error> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.layout.pgdata.join(name);
        std::fs::write(&path, contents).map_err(Error::io("writing", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io("securing", &path))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&path)?;
        }
        Ok(path)
    }

    fn prepare_folders(&self) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        for dir in [&self.layout.pgdata, &self.layout.socket_dir] {
            create_dir(dir)?;
            std::fs::set_permissions(dir, private.clone()).map_err(Error::io("securing", dir))?;
        }
        if !self.layout.log_file.exists() {
            std::fs::write(&self.layout.log_file, b"")
                .map_err(Error::io("creating", &self.layout.log_file))?;
        }
        if let Some(run_as) = &self.run_as {
            run_as.give(&self.layout.pgdata)?;
            run_as.give(&self.layout.socket_dir)?;
            run_as.give(&self.layout.log_file)?;
        }
        Ok(())
    }

    async fn init_if_needed(&self) -> Result<(), Error> {
        let pgdata = &self.layout.pgdata;
        if pgdata.join("PG_VERSION").exists() {
            return Ok(());
        }
        let empty = std::fs::read_dir(pgdata)
            .map_err(Error::io("reading", pgdata))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::NotAClusterFolder {
                path: pgdata.clone(),
            });
        }
        tracing::info!(pgdata = %pgdata.display(), "initialising a private PostgreSQL cluster");
        let mut initdb = self.command(&self.binaries.initdb);
        initdb.arg("-D").arg(pgdata).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let output = initdb
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.initdb))?;
        self.check("initdb", &output)?;

        let conf = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(Error::io("reading", &conf))?;
        text.push_str(&format!("\ninclude_if_exists = '{AIM_CONF}'\n"));
        std::fs::write(&conf, text).map_err(Error::io("writing", &conf))
    }

    fn write_settings(&self) -> Result<(), Error> {
        let listen = if self.layout.tcp { "127.0.0.1" } else { "" };
        let socket_dir = self.layout.socket_dir.to_string_lossy().replace('\'', "''");
        let text = format!(
            "# Written by aim at every start. Put your own settings in postgresql.conf.\n\
             listen_addresses = '{listen}'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n",
            port = self.layout.port,
        );
        let path = self.layout.pgdata.join(AIM_CONF);
        std::fs::write(&path, text).map_err(Error::io("writing", &path))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&path)?;
        }
        Ok(())
    }

    async fn start_or_adopt(&self) -> Result<(), Error> {
        let status = self
            .pg_ctl(&["status"])
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.pg_ctl))?;
        if status.status.success() {
            if self.layout.socket_file().exists() {
                tracing::warn!(
                    pgdata = %self.layout.pgdata.display(),
                    "adopting a PostgreSQL server left running by a previous aim process"
                );
                return Ok(());
            }
            // Running with other settings than ours (say, an older socket folder): restart it
            // so it listens where our URL points.
            tracing::warn!("restarting a leftover PostgreSQL server with the current settings");
            let output = self
                .pg_ctl(&["stop", "-m", "fast", "-w", "-t", STOP_TIMEOUT_S])
                .output()
                .await
                .map_err(Error::io("running", &self.binaries.pg_ctl))?;
            self.check("pg_ctl stop", &output)?;
        }
        let mut start = self.pg_ctl(&["start", "-w", "-t", START_TIMEOUT_S]);
        start.arg("-l").arg(&self.layout.log_file);
        let output = start
            .output()
            .await
            .map_err(Error::io("running", &self.binaries.pg_ctl))?;
        self.check("pg_ctl start", &output)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = self.command(&self.binaries.pg_ctl);
        command
            .arg("-D")
            .arg(&self.layout.pgdata)
            .arg("-s")
            .args(args);
        command
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = match self.layout.niceness {
            Some(niceness) => {
                let mut nice = Command::new("nice");
                nice.arg("-n").arg(niceness.to_string()).arg(program);
                nice
            }
            None => Command::new(program),
        };
        command
            // The server must not receive the terminal's Ctrl-C: we stop it ourselves, after
            // in-flight requests have finished.
            .process_group(0)
            .current_dir(&self.layout.data_dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        if let Some(run_as) = &self.run_as {
            command.gid(run_as.gid.as_raw()).uid(run_as.uid.as_raw());
        }
        command
    }

    fn check(&self, program: &str, output: &Output) -> Result<(), Error> {
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.trim().is_empty() {
            text.push_str(&format!("\n{}", stdout.trim()));
        }
        if let Ok(log) = std::fs::read_to_string(&self.layout.log_file) {
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            if !tail.is_empty() {
                text.push_str(&format!(
                    "\nlast lines of {}:\n",
                    self.layout.log_file.display()
                ));
                text.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        Err(Error::Command {
            program: program.to_owned(),
            status: output.status.to_string(),
            output: text,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let mut command = std::process::Command::new(&self.binaries.pg_ctl);
        command
            .arg("-D")
            .arg(&self.layout.pgdata)
            .args(["-s", "stop", "-m", "fast", "-w", "-t", STOP_TIMEOUT_S])
            .current_dir(&self.layout.data_dir);
        if let Some(run_as) = &self.run_as {
            use std::os::unix::process::CommandExt;
            command.gid(run_as.gid.as_raw()).uid(run_as.uid.as_raw());
        }
        match command.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::error!(
                stderr = %String::from_utf8_lossy(&out.stderr),
                "stopping the private PostgreSQL cluster failed"
            ),
            Err(e) => tracing::error!(error = %e, "could not run pg_ctl to stop the cluster"),
        }
    }
}

/// The cluster's layout, its data folder created.
fn prepare(options: &ClusterOptions) -> Result<Layout, Error> {
    let layout = Layout::new(
        &options.data_dir,
        options.tcp_port,
        &options.database,
        options.niceness,
    )?;
    create_dir(&layout.data_dir)?;
    Ok(layout)
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(Error::io("creating", path))
}

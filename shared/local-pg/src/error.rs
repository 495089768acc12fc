//! Why the private cluster could not start or stop.

use std::path::PathBuf;

/// Everything that can stop the private cluster from starting or stopping; every message says
/// what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH or under \
         /usr/lib/postgresql/*/bin; install PostgreSQL (Debian/Ubuntu: `apt-get install \
         postgresql`) or set DATABASE_URL to an existing server"
    )]
    BinariesNotFound,

    #[error(
        "the data folder {path} is in use by another aim process{}; stop it or set AIM_DATA_DIR \
         to another folder",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, pid: Option<u32> },

    #[error(
        "aim runs as root, and PostgreSQL refuses to run as root, so the private cluster runs as \
         the `postgres` system user, which does not exist here; create it (`useradd --system \
         postgres`), run aim as a regular user, or set DATABASE_URL"
    )]
    NoPostgresUser,

    #[error(
        "the `postgres` system user cannot reach {path}: the folder {blocked} (mode {mode:o}, \
         owner uid {owner}) does not let it in; run `chmod o+x {blocked}`, or set AIM_DATA_DIR to \
         a folder the `postgres` user can reach, or set DATABASE_URL"
    )]
    Unreachable {
        path: PathBuf,
        blocked: PathBuf,
        mode: u32,
        owner: u32,
    },

    #[error(
        "{path} exists, is not empty and is not a PostgreSQL data folder; move it away or set \
         AIM_DATA_DIR to another folder"
    )]
    NotAClusterFolder { path: PathBuf },

    #[error("{program} failed ({status}): {output}")]
    Command {
        program: String,
        status: String,
        output: String,
    },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("looking up the `postgres` system user: {0}")]
    UserLookup(#[source] nix::Error),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

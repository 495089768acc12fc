//! Where a cluster's files are under the data folder: `pg/` (the cluster), `run/` (its Unix
//! socket, unless that path would be too long, see [`socket_dir`]), `postgres.log`; and the URL
//! that reaches it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// The socket file is named after the port even when no TCP listener is open.
const DEFAULT_PORT: u16 = 5432;
pub(crate) const SUPERUSER: &str = "postgres";
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) data_dir: PathBuf,
    pub(crate) pgdata: PathBuf,
    pub(crate) socket_dir: PathBuf,
    pub(crate) log_file: PathBuf,
    pub(crate) port: u16,
    pub(crate) tcp: bool,
    pub(crate) database: String,
    pub(crate) niceness: Option<u8>,
}

impl Layout {
    pub(crate) fn new(
        data_dir: &Path,
        tcp_port: Option<u16>,
        database: &str,
        niceness: Option<u8>,
    ) -> Result<Self, Error> {
        let data_dir = std::path::absolute(data_dir).map_err(Error::io("resolving", data_dir))?;
        let port = tcp_port.unwrap_or(DEFAULT_PORT);
        Ok(Self {
            pgdata: data_dir.join("pg"),
            socket_dir: socket_dir(&data_dir, port),
            log_file: data_dir.join("postgres.log"),
            port,
            tcp: tcp_port.is_some(),
            database: database.to_owned(),
            niceness,
            data_dir,
        })
    }

    pub(crate) fn socket_file(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// `database` is one of our own names (`aim`, `postgres`), so only the query needs encoding.
    pub(crate) fn url_for(&self, database: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("host", &self.socket_dir.to_string_lossy())
            .append_pair("port", &self.port.to_string())
            .finish();
        format!("postgres://{SUPERUSER}@localhost/{database}?{query}")
    }
}

/// The socket folder sits beside the cluster when its path fits in `sun_path`; otherwise under
/// `/tmp`, named after a hash of the data folder so each data folder keeps its own.
fn socket_dir(data_dir: &Path, port: u16) -> PathBuf {
    let local = data_dir.join("run");
    let socket_len = local.join(format!(".s.PGSQL.{port}")).as_os_str().len();
    if socket_len <= MAX_SOCKET_PATH {
        return local;
    }
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    PathBuf::from("/tmp").join(format!("aim-pg-{}", &hex::encode(digest)[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_data_dirs_keep_their_socket_beside_the_cluster() {
        let dir = Path::new("/work/app/.aim");
        assert_eq!(socket_dir(dir, 5432), dir.join("run"));
    }

    #[test]
    fn long_data_dirs_put_their_socket_under_tmp() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let chosen = socket_dir(&long, 5432);
        assert!(chosen.starts_with("/tmp"), "{chosen:?}");
        assert!(chosen.join(".s.PGSQL.5432").as_os_str().len() <= MAX_SOCKET_PATH);
        let other = socket_dir(&PathBuf::from(format!("/{}", "e".repeat(120))), 5432);
        assert_ne!(chosen, other, "each data folder has its own socket folder");
    }

    #[test]
    fn url_points_at_the_socket_folder() {
        let layout = Layout::new(Path::new("/srv/aim"), None, "aim", None).expect("layout");
        let url = url::Url::parse(&layout.url_for("aim")).expect("valid URL");
        assert_eq!(url.path(), "/aim");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("host".into(), "/srv/aim/run".into())));
        assert!(pairs.contains(&("port".into(), "5432".into())));
    }
}

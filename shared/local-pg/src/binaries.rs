//! Finding `initdb` and `pg_ctl`: on `PATH` first (the operator's choice), then the newest
//! version under Debian's `/usr/lib/postgresql/<major>/bin`, which is not on `PATH` by default.

use std::path::{Path, PathBuf};

use crate::error::Error;

const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The server programs the cluster is run with; both come from the same folder so that the
/// data folder is always initialised and run by one PostgreSQL version.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
}

impl Binaries {
    /// # Errors
    /// [`Error::BinariesNotFound`] when neither `PATH` nor `/usr/lib/postgresql` has them.
    pub fn locate(path_var: Option<&std::ffi::OsStr>) -> Result<Self, Error> {
        Self::locate_in(path_var, Path::new(DEBIAN_ROOT))
    }

    fn locate_in(path_var: Option<&std::ffi::OsStr>, debian_root: &Path) -> Result<Self, Error> {
        let on_path = path_var
            .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .iter()
            .find_map(|dir| Self::in_dir(dir))
            .or_else(|| newest_debian_bin(debian_root).and_then(|d| Self::in_dir(&d)))
            .ok_or(Error::BinariesNotFound)
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        (is_executable(&initdb) && is_executable(&pg_ctl)).then_some(Self { initdb, pg_ctl })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `bin` folder of the highest major version installed, compared numerically so that 17
/// beats 9.6.
fn newest_debian_bin(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((version, e.path().join("bin")))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).expect("mkdir");
        for name in ["initdb", "pg_ctl"] {
            let p = dir.join(name);
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    #[test]
    fn newest_major_version_wins_numerically() {
        let root = tempfile::tempdir().expect("tempdir");
        fake_bin(&root.path().join("9.6/bin"));
        fake_bin(&root.path().join("17/bin"));
        fake_bin(&root.path().join("15/bin"));
        std::fs::create_dir_all(root.path().join("not-a-version")).expect("mkdir");
        assert_eq!(
            newest_debian_bin(root.path()),
            Some(root.path().join("17/bin"))
        );
    }

    #[test]
    fn nothing_found_says_how_to_install_or_configure() {
        let root = tempfile::tempdir().expect("tempdir");
        let empty = std::env::join_paths([root.path()]).expect("join");
        let err =
            Binaries::locate_in(Some(&empty), &root.path().join("none")).expect_err("no binaries");
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn path_entries_are_searched_in_order() {
        let root = tempfile::tempdir().expect("tempdir");
        let empty = root.path().join("empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        let good = root.path().join("good");
        fake_bin(&good);
        let path = std::env::join_paths([&empty, &good]).expect("join");
        let found = Binaries::locate(Some(&path)).expect("found");
        assert_eq!(found.initdb, good.join("initdb"));
        assert_eq!(found.pg_ctl, good.join("pg_ctl"));
    }
}

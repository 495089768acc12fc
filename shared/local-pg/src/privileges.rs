//! Running the cluster as the `postgres` system user when `aim` runs as root, since PostgreSQL
//! refuses to run as root. The checks here turn the server's own obscure start-up failures
//! ("could not change directory", "permission denied") into one message naming the folder and
//! the `chmod` that fixes it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::error::Error;

/// The identity the server's processes are started with, when it differs from ours.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    groups: Vec<Gid>,
}

impl RunAs {
    /// `None` when we are not root and simply run the server as ourselves.
    pub fn for_current_process() -> Result<Option<Self>, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = User::from_name("postgres")
            .map_err(Error::UserLookup)?
            .ok_or(Error::NoPostgresUser)?;
        let name = std::ffi::CString::new(user.name.as_str()).map_err(|_| Error::NoPostgresUser)?;
        let groups = nix::unistd::getgrouplist(&name, user.gid).map_err(Error::UserLookup)?;
        Ok(Some(Self {
            uid: user.uid,
            gid: user.gid,
            groups,
        }))
    }

    /// Checks that every folder from `/` down to `path` lets this user search it, so the server
    /// can reach its data folder.
    pub fn check_reachable(&self, path: &Path) -> Result<(), Error> {
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component);
            let meta = std::fs::metadata(&prefix).map_err(Error::io("inspecting", &prefix))?;
            if !self.can_search(meta.uid(), meta.gid(), meta.mode()) {
                return Err(Error::Unreachable {
                    path: path.to_path_buf(),
                    blocked: prefix,
                    mode: meta.mode() & 0o7777,
                    owner: meta.uid(),
                });
            }
        }
        Ok(())
    }

    fn can_search(&self, owner: u32, group: u32, mode: u32) -> bool {
        if owner == self.uid.as_raw() {
            mode & 0o100 != 0
        } else if self.groups.iter().any(|g| g.as_raw() == group) || self.gid.as_raw() == group {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Hands a folder or file we created to this user.
    pub fn give(&self, path: &Path) -> Result<(), Error> {
        std::os::unix::fs::chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
            .map_err(Error::io("changing the owner of", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_as(uid: u32, gid: u32, groups: &[u32]) -> RunAs {
        RunAs {
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            groups: groups.iter().copied().map(Gid::from_raw).collect(),
        }
    }

    #[test]
    fn the_first_folder_that_shuts_the_user_out_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let closed = root.path().join("closed");
        let data = closed.join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        // A user that owns none of these folders and is in none of their groups.
        let stranger = run_as(4_000_000, 4_000_000, &[]);
        match stranger.check_reachable(&data) {
            Err(Error::Unreachable { blocked, mode, .. }) => {
                assert_eq!(blocked, closed);
                assert_eq!(mode, 0o700);
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        stranger
            .check_reachable(&data)
            .expect("o+x lets it through");
    }

    #[test]
    fn search_permission_follows_owner_group_other() {
        let pg = run_as(101, 104, &[104, 103]);
        assert!(pg.can_search(101, 0, 0o700), "owner with u+x");
        assert!(
            !pg.can_search(101, 0, 0o077),
            "owner without u+x, even with o+x"
        );
        assert!(pg.can_search(0, 103, 0o710), "supplementary group with g+x");
        assert!(
            !pg.can_search(0, 103, 0o701),
            "group member is judged by g bits"
        );
        assert!(pg.can_search(0, 0, 0o701), "others with o+x");
        assert!(!pg.can_search(0, 0, 0o770), "others without o+x");
    }
}

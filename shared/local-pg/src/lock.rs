//! The data-folder lock: one `aim` process owns a data folder (and so its cluster) at a time.
//! An OS file lock is released by the kernel when the process dies, so a crash never leaves a
//! stale lock behind, unlike a pid file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

const LOCK_FILE: &str = "aim.lock";

/// Held for as long as this process owns the data folder; dropping it releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock without waiting and records our pid in it for the next process's message.
    ///
    /// # Errors
    /// [`Error::Locked`] when another live process holds it; [`Error::Io`] when the file cannot
    /// be opened.
    pub fn acquire(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("opening the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(Error::Locked {
                    path: data_dir.to_path_buf(),
                    pid: pid.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path)(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(Error::io("writing our pid to", &path))?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_owner_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        match DataDirLock::acquire(dir.path()) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).expect("lock is free again after drop");
    }
}

//! One writer per directory: `<dir>/LOCK`, an exclusive advisory lock (`flock`) held for as
//! long as the [`DirLock`] lives, with the holder's pid and name written inside for the
//! message a second process gets.
//!
//! Two writers of one log lose acknowledged records: each appends at what it believes is the
//! end of a segment, so one overwrites the other, and the next open cuts the mix as a torn
//! tail. The lock is taken before anything else in the directory is opened or created, and a
//! second taker is refused at once, with nothing touched. The operating system releases it
//! when its holder exits, however it exits (`kill -9` included), so a stale file never blocks
//! a restart: the file's presence means nothing, only the lock on it does.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the directory it guards.
pub const LOCK_FILE: &str = "LOCK";

/// The directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another open in this one) holds it.
    #[error("{} is in use by {}", dir.display(), holder.as_deref().unwrap_or("another process"))]
    Held {
        dir: PathBuf,
        /// What the holder wrote: its name and pid, such as `ecom up (pid 4242)`.
        holder: Option<String>,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive lock on a directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks the existing directory `dir` for `holder` (a name for the refusal message, such as
    /// `ecom up`), or says who holds it. Creates `dir/LOCK` if missing; never truncates a lock
    /// file it does not hold.
    pub fn acquire(dir: &Path, holder: &str) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let text = text.trim();
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: (!text.is_empty()).then(|| text.to_owned()),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{holder} (pid {})", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_free_once_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "ecom up").unwrap();
        match DirLock::acquire(dir.path(), "a test") {
            Err(LockError::Held { holder, .. }) => assert_eq!(
                holder.as_deref(),
                Some(format!("ecom up (pid {})", std::process::id()).as_str())
            ),
            other => panic!("{other:?}"),
        }
        // The refused taker left the holder's words in place.
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.starts_with("ecom up (pid "), "{text}");
        drop(first);
        let _again = DirLock::acquire(dir.path(), "a test").unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.starts_with("a test (pid "), "{text}");
    }

    #[test]
    fn a_lock_file_left_behind_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "ecom up (pid 1)\n").unwrap();
        DirLock::acquire(dir.path(), "a test").unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_creation() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(
            DirLock::acquire(&missing, "a test"),
            Err(LockError::Io { .. })
        ));
        assert!(!missing.exists());
    }
}

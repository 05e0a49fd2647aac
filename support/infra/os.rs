//! Small services of the operating system the suite needs: who a process is (so a ledger entry or a
//! port lease outlives a reused pid), a file lock with a deadline, throwaway random ids, and
//! whether a Docker daemon answers.

use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::infra::poll::eventually;

/// Field 22 of /proc/<pid>/stat: the process start time, in clock ticks since boot.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` is still running (and not a reused pid).
pub fn alive(pid: u32, start: u64) -> bool {
    process_start(pid) == Some(start)
}

/// A unique-enough random number for ids, ports and throwaway secrets (no cryptographic use).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A unique-enough hex string for ids and throwaway secrets (no cryptographic use).
pub fn random_hex() -> String {
    format!("{:016x}", random_u64())
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// True when a Docker daemon answers on `socket`.
pub fn docker_daemon_answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// An exclusive lock on a file, held until dropped. The holder writes who it is into the file, so
/// a process that cannot get the lock can say who holds it.
pub struct FileLock {
    _file: std::fs::File,
}

/// Takes the lock on `path`, waiting at most `deadline`; `holder` says who takes it.
pub async fn lock_file(path: &Path, holder: &str, deadline: Duration) -> Result<FileLock, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let what = format!("the lock {}", path.display());
    let taken = eventually(&what, Duration::from_millis(250), deadline, || async {
        // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            Ok(())
        } else {
            let mut holder = String::new();
            let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut holder));
            Err(format!("held by {}", holder.trim()))
        }
    })
    .await;
    if let Err(t) = taken {
        return Err(format!(
            "{}: still {} after {:?}; wait for it to finish, or remove the file if that process is gone",
            path.display(),
            t.last_seen,
            deadline
        ));
    }
    let pid = std::process::id();
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "process {pid} ({holder})");
    Ok(FileLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_names_its_holder_and_gives_up_at_its_deadline() {
        let path = std::env::temp_dir().join(format!("dive-lock-test-{}", random_hex()));
        let first = lock_file(&path, "the first test", Duration::from_secs(1))
            .await
            .expect("a free lock is taken");
        let second = lock_file(&path, "the second test", Duration::from_millis(300)).await;
        let err = second.err().expect("a held lock is refused at its deadline");
        assert!(
            err.contains("held by process") && err.contains("the first test"),
            "{err}"
        );
        drop(first);
        lock_file(&path, "the second test", Duration::from_secs(1))
            .await
            .expect("taken once released");
        let _ = std::fs::remove_file(&path);
    }
}

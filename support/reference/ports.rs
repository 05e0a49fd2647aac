//! Loopback ports for the reference deployments of every test process of a run. A stopped
//! reference service closes its port and must get the same one back when it starts again, so no
//! other test may take it meanwhile: each port is leased, as a file under `<state dir>/ports/`
//! created exclusively and removed when its holder drops it (a lease whose process is gone is
//! stale and taken over). Ports come from below the kernel's ephemeral range, where outgoing
//! connections never take theirs.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;

use crate::infra::config::must_config;
use crate::infra::os::{process_start, random_u64};

/// A port held for one service of one deployment; released on drop.
#[derive(Debug)]
pub struct Lease {
    port: u16,
    path: PathBuf,
}

impl Lease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Leases a free port and returns it with a listener already bound to it.
pub fn lease_listener() -> std::io::Result<(Lease, TcpListener)> {
    let dir = must_config().state_dir.join("ports");
    std::fs::create_dir_all(&dir)?;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = u64::from(low.saturating_sub(1024).min(12000)).max(1);
    for _ in 0..200 {
        let port = low - 1 - (random_u64() % span) as u16;
        let path = dir.join(port.to_string());
        let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if stale(&path) {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let pid = std::process::id();
        writeln!(file, "{pid} {}", process_start(pid).unwrap_or(0))?;
        let lease = Lease { port, path };
        // Another program may use the port without a lease: then try the next.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok((lease, listener));
        }
    }
    Err(std::io::Error::other("no free loopback port below the ephemeral range"))
}

/// Leases a free port for a program that binds it itself.
pub fn lease() -> std::io::Result<Lease> {
    lease_listener().map(|(lease, _)| lease)
}

/// A lease whose holder is no longer running.
fn stale(path: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(pid), Some(start)) => u32::try_from(pid).map_or(true, |pid| process_start(pid) != Some(start)),
        // Still being written by its holder.
        _ => false,
    }
}

//! Real Redis for the reference deployment: a `redis-server` child process (the local runtime) or
//! the official image through testcontainers (the Docker runtime). Either can be stopped, killed,
//! paused and started again on the same port, with its data directory kept, so an AOF-backed
//! blacklist survives a restart as DIVE's does.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::fault::FaultKind;

/// Spawns child processes from one long-lived thread, so that `PR_SET_PDEATHSIG` (which fires
/// when the spawning *thread* ends) kills them exactly when the deployment or the test process
/// goes away, and never earlier.
pub struct Spawner {
    jobs: Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>,
}

impl Spawner {
    pub fn new() -> Spawner {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(spawn_tied(&mut cmd));
            }
        });
        Spawner { jobs: Mutex::new(tx) }
    }

    pub fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (tx, rx) = mpsc::channel();
        let gone = || std::io::Error::other("the spawner thread is gone");
        self.jobs
            .lock()
            .map_err(|_| gone())?
            .send((cmd, tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

impl Default for Spawner {
    fn default() -> Self {
        Spawner::new()
    }
}

fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// True when `program` runs (`program --version` exits 0).
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub enum Redis {
    Local(LocalRedis),
    Docker(Box<DockerRedis>),
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    pub fn port(&self) -> u16 {
        match self {
            Redis::Local(r) => r.port.port(),
            Redis::Docker(r) => r.port.port(),
        }
    }

    pub async fn apply(&self, kind: FaultKind) -> Result<(), String> {
        match self {
            Redis::Local(r) => r.apply(kind),
            Redis::Docker(r) => r.apply(kind).await,
        }
    }

    pub async fn restore(&self, kind: FaultKind) -> Result<(), String> {
        match self {
            Redis::Local(r) => r.restore(kind),
            Redis::Docker(r) => r.restore(kind).await,
        }
    }
}

pub struct LocalRedis {
    /// The port, leased for as long as this Redis exists, stopped or not.
    port: super::ports::Lease,
    dir: PathBuf,
    aof: bool,
    child: Mutex<Option<Child>>,
    spawner: std::sync::Arc<Spawner>,
}

impl LocalRedis {
    /// Starts Redis on a leased port and waits until it answers. Should the port still be taken
    /// (by a program that knows nothing of leases), Redis exits and another port is tried.
    pub async fn start(dir: PathBuf, aof: bool, spawner: std::sync::Arc<Spawner>) -> Result<LocalRedis, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = super::ports::lease().map_err(|e| format!("free port: {e}"))?;
            let redis = LocalRedis {
                port,
                dir: dir.clone(),
                aof,
                child: Mutex::new(None),
                spawner: spawner.clone(),
            };
            redis.launch()?;
            match redis.until_ready().await {
                Ok(()) => return Ok(redis),
                Err(e) => last = e,
            }
        }
        Err(format!("redis-server did not start: {last}"))
    }

    async fn until_ready(&self) -> Result<(), String> {
        let url = format!("redis://127.0.0.1:{}", self.port.port());
        let ready = crate::poll::eventually(
            "redis-server answering PING",
            Duration::from_millis(20),
            Duration::from_secs(10),
            async || {
                if self.exited() {
                    return Ok(false);
                }
                ping(&url).await?;
                Ok(true)
            },
        )
        .await
        .map_err(|t| t.to_string())?;
        if ready.value {
            Ok(())
        } else {
            Err(format!("redis-server exited (port {} taken?)", self.port.port()))
        }
    }

    fn exited(&self) -> bool {
        self.child
            .lock()
            .map(|mut c| c.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None))))
            .unwrap_or(true)
    }

    fn launch(&self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.port().to_string(),
            "--save",
            "",
            "--daemonize",
            "no",
        ])
        .args(["--appendonly", if self.aof { "yes" } else { "no" }])
        .arg("--dir")
        .arg(&self.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = self
            .spawner
            .spawn(cmd)
            .map_err(|e| format!("redis-server: {e}; install it (apt-get install -y redis-server)"))?;
        if let Ok(mut slot) = self.child.lock() {
            *slot = Some(child);
        }
        Ok(())
    }

    fn signal(&self, sig: libc::c_int) {
        if let Ok(slot) = self.child.lock()
            && let Some(child) = slot.as_ref()
        {
            // SAFETY: plain kill(2) on a child we own.
            unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        }
    }

    fn end(&self, sig: libc::c_int) {
        self.signal(libc::SIGCONT);
        self.signal(sig);
        let child = self.child.lock().ok().and_then(|mut s| s.take());
        if let Some(mut child) = child {
            let _ = child.wait();
        }
    }

    fn apply(&self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Stop => self.end(libc::SIGTERM),
            FaultKind::Kill => self.end(libc::SIGKILL),
            FaultKind::Pause => self.signal(libc::SIGSTOP),
        }
        Ok(())
    }

    fn restore(&self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Pause => {
                self.signal(libc::SIGCONT);
                Ok(())
            }
            FaultKind::Stop | FaultKind::Kill => self.launch(),
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.end(libc::SIGKILL);
    }
}

pub struct DockerRedis {
    port: super::ports::Lease,
    container: ContainerAsync<GenericImage>,
}

impl DockerRedis {
    pub async fn start(aof: bool) -> Result<DockerRedis, String> {
        // A fixed host port keeps the address stable across stop/start of the container.
        let port = super::ports::lease().map_err(|e| format!("free port: {e}"))?;
        let container = GenericImage::new("redis", "7-alpine")
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_mapped_port(port.port(), 6379.tcp())
            .with_cmd(["redis-server", "--appendonly", if aof { "yes" } else { "no" }])
            .start()
            .await
            .map_err(|e| format!("redis container: {e}"))?;
        Ok(DockerRedis { port, container })
    }

    async fn apply(&self, kind: FaultKind) -> Result<(), String> {
        let result = match kind {
            FaultKind::Stop => self.container.stop().await,
            FaultKind::Kill => self.container.stop_with_timeout(Some(0)).await,
            FaultKind::Pause => self.container.pause().await,
        };
        result.map_err(|e| format!("redis container: {e}"))
    }

    async fn restore(&self, kind: FaultKind) -> Result<(), String> {
        let result = match kind {
            FaultKind::Pause => self.container.unpause().await,
            FaultKind::Stop | FaultKind::Kill => self.container.start().await,
        };
        result.map_err(|e| format!("redis container: {e}"))
    }
}

/// One `PING` on a fresh connection: whether the Redis at `url` answers.
pub async fn ping(url: &str) -> Result<(), String> {
    let client = ::redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    ::redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// True when a Docker daemon answers on `socket`.
pub fn docker_daemon_answers(socket: &std::path::Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

//! Real Redis for the reference deployment: a `redis-server` child process (the local runtime) or
//! the official image through testcontainers (the Docker runtime). Either can be stopped, killed,
//! paused and started again on the same port, with its data directory kept, so an AOF-backed
//! blacklist survives a restart as DIVE's does.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::container::Ledgered;
use crate::fault::ledger::Ledger;
use crate::infra::config::must_config;
use crate::infra::exec::{Spawner, Tied};
use crate::infra::poll::eventually;
use crate::vocab::fault::FaultKind;

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
    process: Mutex<Option<Tied>>,
    spawner: Arc<Spawner>,
}

impl LocalRedis {
    /// Starts Redis on a leased port and waits until it answers. Should the port still be taken
    /// (by a program that knows nothing of leases), Redis exits and another port is tried.
    pub async fn start(dir: PathBuf, aof: bool, spawner: Arc<Spawner>) -> Result<LocalRedis, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = super::ports::lease().map_err(|e| format!("free port: {e}"))?;
            let redis = LocalRedis {
                port,
                dir: dir.clone(),
                aof,
                process: Mutex::new(None),
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
        let ready = eventually(
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
        self.process
            .lock()
            .map(|p| p.as_ref().is_none_or(Tied::exited))
            .unwrap_or(true)
    }

    fn launch(&self) -> Result<(), String> {
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--port", &self.port.port().to_string()]
            .into_iter()
            .map(str::to_string)
            .collect();
        args.extend(["--save", "", "--daemonize", "no", "--appendonly"].map(str::to_string));
        args.push(if self.aof { "yes" } else { "no" }.to_string());
        args.extend(["--dir".to_string(), self.dir.display().to_string()]);
        let process = self
            .spawner
            .spawn("redis-server", &args, Stdio::null())
            .map_err(|e| format!("{e}; install it (apt-get install -y redis-server)"))?;
        if let Ok(mut slot) = self.process.lock() {
            *slot = Some(process);
        }
        Ok(())
    }

    fn apply(&self, kind: FaultKind) -> Result<(), String> {
        let Ok(mut slot) = self.process.lock() else {
            return Err("redis process lock poisoned".to_string());
        };
        match kind {
            FaultKind::Stop => slot.take().map(|p| p.end(libc::SIGTERM)),
            FaultKind::Kill => slot.take().map(|p| p.end(libc::SIGKILL)),
            FaultKind::Pause => slot.as_ref().map(|p| p.signal(libc::SIGSTOP)),
        };
        Ok(())
    }

    fn restore(&self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Pause => {
                if let Ok(slot) = self.process.lock()
                    && let Some(p) = slot.as_ref()
                {
                    p.signal(libc::SIGCONT);
                }
                Ok(())
            }
            FaultKind::Stop | FaultKind::Kill => self.launch(),
        }
    }
}

pub struct DockerRedis {
    port: super::ports::Lease,
    container: Ledgered,
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
        let container = Ledgered::new(container, &Ledger::new(&must_config().state_dir))?;
        Ok(DockerRedis { port, container })
    }

    async fn apply(&self, kind: FaultKind) -> Result<(), String> {
        let container = self.container.container()?;
        let result = match kind {
            FaultKind::Stop => container.stop().await,
            FaultKind::Kill => container.stop_with_timeout(Some(0)).await,
            FaultKind::Pause => container.pause().await,
        };
        result.map_err(|e| format!("redis container: {e}"))
    }

    async fn restore(&self, kind: FaultKind) -> Result<(), String> {
        let container = self.container.container()?;
        let result = match kind {
            FaultKind::Pause => container.unpause().await,
            FaultKind::Stop | FaultKind::Kill => container.start().await,
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

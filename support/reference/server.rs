//! A loopback HTTP(S) server that the reference deployment can stop, kill, pause and start again
//! on the same port, like a container: stopped refuses connections, paused accepts and never
//! answers, started again begins with fresh state (the router is rebuilt, as a restarted
//! process would be).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::runtime;
use tokio::sync::watch;

/// Builds the server's routes; called on every start.
pub type MakeRouter = Arc<dyn Fn() -> Router + Send + Sync>;

pub struct ControlledServer {
    name: String,
    addr: SocketAddr,
    tls: Option<RustlsConfig>,
    make_router: MakeRouter,
    runtime: runtime::Handle,
    paused: watch::Sender<bool>,
    running: Mutex<Option<Handle<SocketAddr>>>,
    /// Keeps the port this server's own while it is stopped.
    _lease: super::ports::Lease,
}

impl ControlledServer {
    /// Binds an ephemeral loopback port and starts serving.
    pub fn start(
        name: &str,
        tls: Option<RustlsConfig>,
        make_router: MakeRouter,
        runtime: runtime::Handle,
    ) -> Result<Arc<ControlledServer>, String> {
        let (lease, listener) = super::ports::lease_listener().map_err(|e| format!("{name}: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("{name}: {e}"))?;
        let server = Arc::new(ControlledServer {
            name: name.to_string(),
            addr,
            tls,
            make_router,
            runtime,
            paused: watch::channel(false).0,
            running: Mutex::new(None),
            _lease: lease,
        });
        server.serve(listener)?;
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_running(&self) -> bool {
        self.running.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    fn serve(&self, listener: TcpListener) -> Result<(), String> {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", self.name))?;
        let _guard = self.runtime.enter();
        let paused = self.paused.subscribe();
        let router = (self.make_router)().layer(middleware::from_fn(move |req: Request, next: Next| {
            let mut paused = paused.clone();
            async move { hold_while_paused(&mut paused, req, next).await }
        }));
        let handle = Handle::new();
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        match &self.tls {
            Some(tls) => {
                let server = axum_server::from_tcp_rustls(listener, tls.clone())
                    .map_err(|e| format!("{}: {e}", self.name))?
                    .handle(handle.clone());
                self.runtime.spawn(server.serve(app));
            }
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(|e| format!("{}: {e}", self.name))?
                    .handle(handle.clone());
                self.runtime.spawn(server.serve(app));
            }
        }
        if let Ok(mut running) = self.running.lock() {
            *running = Some(handle);
        }
        Ok(())
    }

    /// Stops serving and closes the port. `graceful` lets requests in flight finish (docker stop);
    /// otherwise connections are cut (docker kill).
    pub fn stop(&self, graceful: bool) {
        self.resume();
        let handle = self.running.lock().ok().and_then(|mut r| r.take());
        if let Some(handle) = handle {
            if graceful {
                handle.graceful_shutdown(Some(Duration::from_millis(200)));
            } else {
                handle.shutdown();
            }
        }
    }

    /// Starts again on the same port with a fresh router. Binding can briefly fail while the
    /// old listener is torn down; the caller's readiness wait covers that by retrying.
    pub fn restart(&self) -> Result<(), String> {
        if self.is_running() {
            self.resume();
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).map_err(|e| format!("{}: rebind {}: {e}", self.name, self.addr))?;
        self.serve(listener)
    }

    /// Keeps accepting connections but answers nothing until resumed (docker pause).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

async fn hold_while_paused(paused: &mut watch::Receiver<bool>, req: Request, next: Next) -> Response {
    // A closed channel means the deployment is gone; answering then does no harm.
    let _ = paused.wait_for(|p| !*p).await;
    next.run(req).await
}

impl Drop for ControlledServer {
    fn drop(&mut self) {
        self.stop(false);
    }
}

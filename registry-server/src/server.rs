//! Serving: bind, accept (plain or TLS), graceful shutdown, online GC. [`Server`] is the
//! in-process handle tests start on `127.0.0.1:0`; [`serve`] is what the binary runs.

use crate::api::{self, AppState};
use crate::config::{Config, TlsConfig};
use crate::error::{Error, Result};
use crate::gc::{self, GcOptions};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// A running registry.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn load_tls(t: &TlsConfig) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|e| Error::Tls(format!("{}: {e}", t.cert.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", t.cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate found", t.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| Error::Tls(format!("{}: {e}", t.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("{}: {e}", t.cert.display())))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(async move {
                    let _ = watcher.watch(conn).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(s) => {
                            let conn = builder.serve_connection(TokioIo::new(s), svc).into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("graceful shutdown timed out; closing connections still open");
    }
}

impl Server {
    /// Bind `config.addr` and serve in the background on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Server> {
        let state = AppState::new(&config)?;
        Server::start_with_state(&config, state).await
    }

    /// Like [`Server::start`], with state built by the caller (another driver, say).
    pub async fn start_with_state(config: &Config, state: AppState) -> Result<Server> {
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let listener = TcpListener::bind(&config.addr)
            .await
            .map_err(|source| Error::Listen { addr: config.addr.clone(), source })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen { addr: config.addr.clone(), source })?;
        let (stop, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            api::app(state.clone()),
            tls.clone(),
            rx.clone(),
            config.shutdown_timeout,
        ))];
        if let Some(interval) = config.gc.interval {
            let st = state.clone();
            let opts = GcOptions { dry_run: false, delete_untagged: config.gc.delete_untagged, grace: config.gc.grace };
            let mut rx = rx;
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = rx.changed() => break,
                    }
                    match gc::collect(&st.registry, &opts).await {
                        Ok(r) => {
                            tracing::info!(
                                deleted = r.blobs_deleted.len(),
                                bytes = r.bytes_freed,
                                kept = r.blobs_kept,
                                "online gc"
                            );
                            st.metrics.gc_done(r.blobs_deleted.len() as u64);
                        }
                        Err(e) if gc::is_busy(&e) => tracing::info!(reason = %e, "online gc skipped"),
                        Err(e) => tracing::error!(error = %e, "online gc failed"),
                    }
                }
            }));
        }
        tracing::info!(%addr, tls = tls.is_some(), driver = state.registry.driver().name(), "rbuild-registry listening");
        Ok(Server { addr, tls: tls.is_some(), state, stop, tasks })
    }

    /// The bound address (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// `127.0.0.1:PORT`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The shared state (registry, metrics…).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stop accepting, let requests in flight finish (up to the shutdown timeout), return.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Wait for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serve `config` until SIGINT/SIGTERM, then shut down gracefully.
pub async fn serve(config: Config) -> Result<()> {
    let server = Server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown().await;
    Ok(())
}

/// A registry on its own thread and runtime, for synchronous tests: dropped, it shuts down.
pub struct BackgroundServer {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Start `config` on a new thread; returns once it listens.
    pub fn start(config: Config) -> Result<BackgroundServer> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(SocketAddr, bool)>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rbuild-registry".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(Error::Listen { addr: config.addr.clone(), source }));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Server::start(config).await {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok((s.local_addr(), s.tls)));
                            let _ = stop_rx.await;
                            s.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|source| Error::Listen { addr: "thread".into(), source })?;
        let (addr, tls) = ready_rx.recv().map_err(|_| Error::Listen {
            addr: "thread".into(),
            source: std::io::Error::other("server thread died"),
        })??;
        Ok(BackgroundServer { addr, tls, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! Serving: bind, accept (plain or TLS), graceful shutdown, online GC. [`Server`] is the
//! in-process handle tests start on `127.0.0.1:0`; [`serve`] is what the binary runs.

use crate::api::{self, AppState, ClientAddr};
use crate::config::{Config, TlsConfig};
use crate::error::{Error, Result};
use crate::gc::{self, GcOptions};
use crate::limits::{ConnGuard, ConnLimits, FirstBytes};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// A running registry.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    tls: bool,
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn load_tls(t: &TlsConfig) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_err = |e: &dyn std::fmt::Display| Error::Tls(format!("tls.cert = {:?}: {e}", t.cert));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|e| cert_err(&e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| cert_err(&e))?;
    if certs.is_empty() {
        return Err(cert_err(&"no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| Error::Tls(format!("tls.key = {:?}: {e}", t.key)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| cert_err(&e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, what an HTTP/2 client sends first.
const H2_PREFACE_LEN: usize = 24;

/// What each accepted connection is served with.
#[derive(Clone)]
struct Conns {
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: Arc<ConnLimits>,
    /// HTTP/1.1 (plain, and TLS without `h2` in ALPN), with the header timeout.
    h1: auto::Builder<TokioExecutor>,
    /// HTTP/2 (TLS with `h2` in ALPN).
    h2: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
}

impl Conns {
    fn new(app: axum::Router, tls: Option<TlsAcceptor>, limits: Arc<ConnLimits>, config: &Config) -> Conns {
        // One protocol per builder: the auto-detecting builder waits, with no limit, for the
        // first bytes of a connection that sends nothing.
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(config.header_timeout)
            .keep_alive_timeout(config.header_timeout);
        Conns { app, tls, limits, h1, h2, header_timeout: config.header_timeout }
    }

    fn serve(&self, stream: TcpStream, peer: SocketAddr, guard: ConnGuard, graceful: &GracefulShutdown) {
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            self.app.clone(),
            move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        match &self.tls {
            None => {
                let conn = self.h1.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(async move {
                    let _guard = guard;
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let (h1, h2, limit) = (self.h1.clone(), self.h2.clone(), self.header_timeout);
                tokio::spawn(async move {
                    let _guard = guard;
                    let s = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out (header_timeout)"),
                    };
                    let r = if s.get_ref().1.alpn_protocol() == Some(b"h2") {
                        // The HTTP/2 handshake waits for the preface with no limit of its own.
                        let io = FirstBytes::new(s, H2_PREFACE_LEN, limit);
                        watcher.watch(h2.serve_connection(TokioIo::new(io), svc).into_owned()).await
                    } else {
                        watcher.watch(h1.serve_connection(TokioIo::new(s), svc).into_owned()).await
                    };
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                });
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, conns: Conns, mut stop: watch::Receiver<bool>, timeout: Duration) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
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
        // Over a cap: closed at once, so it holds no descriptor (logged once, not per connection).
        let Some(guard) = conns.limits.admit(peer.ip()) else { continue };
        conns.serve(stream, peer, guard, &graceful);
    }
    drop(listener);
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("graceful shutdown timed out; closing connections still open");
    }
}

/// `max_connections`, lowered to fit the open-file limit (keeping room for storage files).
fn connection_cap(configured: usize) -> usize {
    const RESERVE: u64 = 128;
    match crate::limits::nofile_limit() {
        Some(soft) if configured != 0 && configured as u64 + RESERVE > soft => {
            let fit = soft.saturating_sub(RESERVE).max(16) as usize;
            tracing::info!(
                "max_connections = {configured}: lowered to {fit} to fit the open-file limit ({soft}); raise `ulimit -n` for more"
            );
            fit
        }
        _ => configured,
    }
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|io| Error::Listen { addr: addr.to_string(), io })
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
        let listener = bind(&config.addr).await?;
        let addr = listener.local_addr().map_err(|io| Error::Listen { addr: config.addr.clone(), io })?;
        let metrics_listener = match &config.metrics.addr {
            Some(a) => Some(
                TcpListener::bind(a).await.map_err(|io| Error::Listen { addr: format!("{a} (metrics.addr)"), io })?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let limits = ConnLimits::new(
            connection_cap(config.max_connections),
            config.max_connections_per_client,
            state.metrics.clone(),
        );
        let (stop, rx) = watch::channel(false);
        let conns = Conns::new(api::app(state.clone()), tls.clone(), limits.clone(), config);
        let mut tasks = vec![tokio::spawn(accept_loop(listener, conns, rx.clone(), config.shutdown_timeout))];
        if let Some(l) = metrics_listener {
            let conns = Conns::new(api::metrics_app(state.clone()), None, limits, config);
            tasks.push(tokio::spawn(accept_loop(l, conns, rx.clone(), config.shutdown_timeout)));
        }
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
        tracing::info!("auth: {}", state.auth.describe());
        match metrics_addr {
            Some(m) => tracing::info!(addr = %m, "metrics: /metrics on its own address, without auth"),
            None if config.auth.mode == crate::config::AuthMode::None => {
                tracing::info!("metrics: /metrics on the main address, open to all (auth.mode = none)")
            }
            None => tracing::info!("metrics: /metrics on the main address, for authenticated users"),
        }
        Ok(Server { addr, metrics_addr, tls: tls.is_some(), state, stop, tasks })
    }

    /// The bound address (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `metrics.addr` listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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

/// SIGINT or SIGTERM, armed from the moment it is made: a signal that comes before the
/// future is first polled is kept for it, not left to the default action (death).
pub struct ShutdownSignal {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Install the handlers now (call it before saying the server listens).
    pub fn arm() -> std::io::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignal { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    /// Wait for the first of them.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serve `config` until SIGINT/SIGTERM, then shut down gracefully.
pub async fn serve(config: Config) -> Result<()> {
    let signal = ShutdownSignal::arm().map_err(Error::Signals)?;
    let server = Server::start(config).await?;
    signal.wait().await;
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
                    Err(io) => {
                        let _ = ready_tx.send(Err(Error::Listen { addr: config.addr.clone(), io }));
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
            .map_err(|io| Error::Listen { addr: "thread".into(), io })?;
        let (addr, tls) = ready_rx
            .recv()
            .map_err(|_| Error::Listen { addr: "thread".into(), io: std::io::Error::other("server thread died") })??;
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

//! Limits that keep one client from holding the server: connection caps (all clients, and per
//! client IP address) and the idle timeout of request bodies. Header timeouts are hyper's
//! (set up in [`crate::server`]).

use crate::metrics::Metrics;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// How often a limit that keeps being hit is logged again (with the count of refusals).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts open connections and refuses those over the caps.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_client: usize,
    state: Mutex<LimitState>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct LimitState {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// Refusals since the last log line.
    refused: u64,
    last_log: Option<Instant>,
}

/// One admitted connection; dropped, it no longer counts.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    /// Caps of `max_total` connections and `max_per_client` per IP address (0: no cap),
    /// counted in `metrics` too.
    pub fn new(max_total: usize, max_per_client: usize, metrics: Arc<Metrics>) -> Arc<ConnLimits> {
        Arc::new(ConnLimits { max_total, max_per_client, state: Mutex::new(LimitState::default()), metrics })
    }

    /// Admit a connection from `ip`, or `None` when a cap is reached (logged at most once a
    /// minute, not once per connection).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mine = st.per_client.get(&ip).copied().unwrap_or(0);
        let over = if self.max_total > 0 && st.total >= self.max_total {
            Some(format!("{} connections open (max_connections = {})", st.total, self.max_total))
        } else if self.max_per_client > 0 && mine >= self.max_per_client {
            Some(format!("{mine} connections open from {ip} (max_connections_per_client = {})", self.max_per_client))
        } else {
            None
        };
        if let Some(why) = over {
            self.metrics.connection_refused();
            st.refused += 1;
            let now = Instant::now();
            if st.last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
                let refused = std::mem::take(&mut st.refused);
                if st.last_log.is_none() {
                    tracing::warn!("connection limit reached: {why}; refusing new connections over it");
                } else {
                    tracing::warn!(
                        "connection limit reached: {why}; {refused} connections refused since the last report"
                    );
                }
                st.last_log = Some(now);
            }
            return None;
        }
        st.total += 1;
        *st.per_client.entry(ip).or_default() += 1;
        self.metrics.connection(true);
        Some(ConnGuard { limits: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut st = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        st.total = st.total.saturating_sub(1);
        self.limits.metrics.connection(false);
        if let Some(n) = st.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.per_client.remove(&self.ip);
            }
        }
    }
}

/// A request body that fails with an `io::ErrorKind::TimedOut` error when the client sends
/// nothing for `idle` while the handler waits for it. Only time spent waiting for the client
/// counts: a handler busy elsewhere (a slow store) between reads does not make it time out.
pub struct TimedBody {
    inner: Body,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl TimedBody {
    /// Wrap `inner`.
    pub fn new(inner: Body, idle: Duration) -> TimedBody {
        TimedBody { inner, idle, sleep: None, waiting: false }
    }

    /// `body` wrapped, as a [`Body`] again.
    pub fn wrap(body: Body, idle: Duration) -> Body {
        Body::new(TimedBody::new(body, idle))
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.idle;
            match &mut this.sleep {
                Some(s) => s.as_mut().reset(deadline),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match hyper::body::Body::poll_frame(Pin::new(&mut this.inner), cx) {
            Poll::Ready(r) => {
                this.waiting = false;
                Poll::Ready(r.map(|r| r.map_err(|e| std::io::Error::other(e.into_inner()))))
            }
            Poll::Pending => match this.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client sent nothing for {:?} (body_timeout)", this.idle),
                )))),
                _ => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// A connection's reader that must deliver its first `need` bytes within a deadline (then it
/// is a plain passthrough). For HTTP/2, whose server handshake waits without a limit for the
/// client's 24-byte preface.
pub struct FirstBytes<IO> {
    io: IO,
    need: usize,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> FirstBytes<IO> {
    /// Wrap `io`: `need` bytes must arrive within `limit`.
    pub fn new(io: IO, need: usize, limit: Duration) -> FirstBytes<IO> {
        FirstBytes { io, need, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytes<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.need = this.need.saturating_sub(buf.filled().len() - before);
                Poll::Ready(r)
            }
            Poll::Pending if this.need > 0 && this.deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the client did not start (header_timeout)"),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstBytes<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, b)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Raise the soft limit of open files to the hard limit (as Go programs do at start), so the
/// connection caps, not the OS, decide; returns the soft limit now (`None`: unlimited or unknown).
pub fn raise_nofile_limit() -> Option<u64> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        if l.rlim_cur < l.rlim_max {
            let want = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
    }
    (l.rlim_cur != libc::RLIM_INFINITY).then_some(l.rlim_cur)
}

/// The soft limit of open files (`None`: unlimited or unknown).
pub fn nofile_limit() -> Option<u64> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 || l.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(l.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_client_and_total() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let m = Arc::new(Metrics::default());
        let l = ConnLimits::new(3, 2, m.clone());
        let g1 = l.admit(a).unwrap();
        let _g2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "a third from one address");
        let _g3 = l.admit(b).unwrap();
        assert!(l.admit(b).is_none(), "over the total");
        drop(g1);
        let _g4 = l.admit(a).unwrap();
        assert_eq!(l.open(), 3);
        let text = m.render(0);
        assert!(text.contains("rbuild_registry_connections_open 3\n"), "{text}");
        assert!(text.contains("rbuild_registry_connections_refused_total 2\n"), "{text}");
        let unlimited = ConnLimits::new(0, 0, m);
        let gs: Vec<_> = (0..100).map(|_| unlimited.admit(a).unwrap()).collect();
        assert_eq!(unlimited.open(), gs.len());
    }
}

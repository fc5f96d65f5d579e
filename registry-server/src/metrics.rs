//! Prometheus metrics: requests by method and status, bytes in and out, uploads in flight.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters, shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    bytes_out: AtomicU64,
    uploads_in_flight: AtomicI64,
    gc_runs: AtomicU64,
    gc_blobs_deleted: AtomicU64,
    connections_open: AtomicI64,
    connections_refused: AtomicU64,
}

/// Decrements the in-flight upload gauge when dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Count one answered request.
    pub fn request(&self, method: &str, status: u16) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((method.to_string(), status)).or_default() += 1;
    }

    /// Count bytes sent in response bodies.
    pub fn sent(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// An upload request began; the guard ends it.
    pub fn upload_started(&self) -> InFlight<'_> {
        self.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A garbage collection finished.
    pub fn gc_done(&self, blobs_deleted: u64) {
        self.gc_runs.fetch_add(1, Ordering::Relaxed);
        self.gc_blobs_deleted.fetch_add(blobs_deleted, Ordering::Relaxed);
    }

    /// A connection was admitted (`opened`) or ended.
    pub fn connection(&self, opened: bool) {
        self.connections_open.fetch_add(if opened { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// A connection over a cap was closed at once.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Uploads in flight now.
    pub fn uploads_in_flight(&self) -> i64 {
        self.uploads_in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition; `bytes_in` comes from the registry.
    pub fn render(&self, bytes_in: u64) -> String {
        let mut s = String::new();
        s.push_str("# HELP rbuild_registry_http_requests_total HTTP requests answered, by method and status.\n");
        s.push_str("# TYPE rbuild_registry_http_requests_total counter\n");
        for ((m, st), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(s, "rbuild_registry_http_requests_total{{method=\"{m}\",status=\"{st}\"}} {n}");
        }
        let mut gauge = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge("rbuild_registry_bytes_received_total", "counter", "Blob bytes received.", bytes_in.to_string());
        gauge(
            "rbuild_registry_bytes_sent_total",
            "counter",
            "Response body bytes sent.",
            self.bytes_out.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "rbuild_registry_uploads_in_flight",
            "gauge",
            "Upload requests being received.",
            self.uploads_in_flight().to_string(),
        );
        gauge(
            "rbuild_registry_connections_open",
            "gauge",
            "Client connections open.",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "rbuild_registry_connections_refused_total",
            "counter",
            "Connections closed at once for being over max_connections or max_connections_per_client.",
            self.connections_refused.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "rbuild_registry_gc_runs_total",
            "counter",
            "Garbage collections run.",
            self.gc_runs.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "rbuild_registry_gc_blobs_deleted_total",
            "counter",
            "Blobs deleted by garbage collection.",
            self.gc_blobs_deleted.load(Ordering::Relaxed).to_string(),
        );
        s
    }
}

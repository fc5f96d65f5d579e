//! `rbuild-registry`: a self-hosted OCI registry.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rbuild_registry_server::config::{Config, DEFAULT_ADDR, DEFAULT_ROOT, parse_duration};
use rbuild_registry_server::gc::{self, GcOptions};
use rbuild_registry_server::{AppState, serve};
use std::io::BufRead as _;
use std::path::PathBuf;

const ABOUT: &str = "A self-hosted OCI distribution registry (OCI distribution-spec v1.1, Docker Registry V2).";

const AFTER: &str = "\
Configuration comes from, lowest to highest precedence: defaults, the TOML file given with
--config, RBUILD_REGISTRY_* environment variables, then flags.

Environment variables:
  RBUILD_REGISTRY_ADDR            listen address (default 127.0.0.1:5000)
  RBUILD_REGISTRY_ROOT            data directory (default ./registry-data)
  RBUILD_REGISTRY_READ_ONLY       true/false
  RBUILD_REGISTRY_LOG_LEVEL       tracing filter (RUST_LOG wins)
  RBUILD_REGISTRY_STORAGE_DRIVER  filesystem, memory or s3
  RBUILD_REGISTRY_S3_BUCKET, _PREFIX, _ENDPOINT, _REGION, _PATH_STYLE   the s3 driver's bucket
  RBUILD_REGISTRY_S3_REDIRECT     true: blob GETs answer 307 to a presigned store URL (_REDIRECT_EXPIRY)
  RBUILD_REGISTRY_S3_CONNECT_TIMEOUT, _REQUEST_TIMEOUT, _MAX_RETRIES, _RETRY_TIMEOUT   store limits
  RBUILD_REGISTRY_DELETE_ENABLED  true/false
  RBUILD_REGISTRY_FSYNC           true/false (default true: blobs are on disk before they are visible)
  RBUILD_REGISTRY_CACHE_REFRESH   replica cache staleness bound (default 1s on s3, 0 = off)
  RBUILD_REGISTRY_TLS_CERT        PEM certificate chain
  RBUILD_REGISTRY_TLS_KEY         PEM private key
  RBUILD_REGISTRY_AUTH            none, basic or token
  RBUILD_REGISTRY_HTPASSWD        htpasswd file (bcrypt)
  RBUILD_REGISTRY_ANONYMOUS_PULL  true/false
  RBUILD_REGISTRY_TOKEN_REALM     token endpoint URL put in challenges
  RBUILD_REGISTRY_TOKEN_SECRET_FILE  HS256 secret shared by replicas
  RBUILD_REGISTRY_GC_INTERVAL     online GC interval (30m, 24h…)
  RBUILD_REGISTRY_GC_GRACE        GC grace period (default 1h)
  RBUILD_REGISTRY_SHUTDOWN_TIMEOUT  graceful shutdown limit (default 30s)
  RBUILD_REGISTRY_HEADER_TIMEOUT  limit for a request's headers and an idle connection (default 30s)
  RBUILD_REGISTRY_BODY_TIMEOUT    limit for a request body sending nothing (default 60s)
  RBUILD_REGISTRY_MAX_CONNECTIONS             connections at once (default 4096, 0 = no limit)
  RBUILD_REGISTRY_MAX_CONNECTIONS_PER_CLIENT  from one IP address (default 256, 0 = no limit)
  RBUILD_REGISTRY_METRICS_ADDR    serve /metrics on this address, without auth (default: on the
                                  main address, behind auth)

Endpoints besides /v2/: /token (token auth), /metrics (Prometheus; behind auth unless
metrics.addr is set), /healthz, /readyz. One log line per request at info
(target rbuild_registry::access: client, method, path, status, bytes, time).
See docs/registry-server.md for the config file keys.";

#[derive(Parser)]
#[command(name = "rbuild-registry", version, about = ABOUT, after_help = AFTER)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// TOML config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory of the filesystem storage [default: ./registry-data].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the registry until SIGINT/SIGTERM (requests in flight finish first).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address [default: 127.0.0.1:5000; 0.0.0.0:5000 exposes it].
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Refuse pushes and deletes (405 UNSUPPORTED).
        #[arg(long)]
        read_only: bool,
    },
    /// Garbage-collect blobs no tag, index or referrer reaches. Safe while the registry (any
    /// number of replicas) keeps serving pushes: nothing needs stopping or --read-only. One
    /// collection runs at a time per storage (--wait waits for a running one).
    Gc {
        #[command(flatten)]
        common: Common,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests no tag, index or referrer reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Never delete anything younger than this [default: gc.grace, 1h].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<std::time::Duration>,
        /// When another collection is running, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
    },
    /// Print an htpasswd line (bcrypt) for USER, reading the password from stdin.
    HashPassword {
        /// The user name.
        user: String,
    },
}

fn load(common: &Common) -> anyhow::Result<Config> {
    let mut cfg = match &common.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    cfg.apply_env(std::env::vars())?;
    if let Some(r) = &common.root {
        cfg.root = r.clone();
    }
    Ok(cfg)
}

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rbuild-registry: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let _ = (DEFAULT_ADDR, DEFAULT_ROOT);
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.cmd {
        Cmd::Serve { common, addr, read_only } => {
            let mut cfg = load(&common)?;
            if let Some(a) = addr {
                cfg.addr = a;
            }
            cfg.read_only |= read_only;
            cfg.validate()?;
            init_logs(&cfg.log_level);
            rbuild_registry_server::limits::raise_nofile_limit();
            rt.block_on(serve(cfg))?;
        }
        Cmd::Gc { common, dry_run, delete_untagged, grace, wait } => {
            let cfg = load(&common)?;
            init_logs(&cfg.log_level);
            let opts = GcOptions {
                dry_run,
                delete_untagged: delete_untagged || cfg.gc.delete_untagged,
                grace: grace.unwrap_or(cfg.gc.grace),
            };
            let state = AppState::new(&cfg)?;
            let report = rt.block_on(async {
                loop {
                    match gc::collect(&state.registry, &opts).await {
                        Err(e) if wait && gc::is_busy(&e) => {
                            eprintln!("rbuild-registry: {e}; waiting");
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        }
                        r => return r,
                    }
                }
            })?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for m in &report.manifests_deleted {
                println!("{verb} manifest {m}");
            }
            for b in &report.blobs_deleted {
                println!("{verb} blob {b}");
            }
            for u in &report.uploads_deleted {
                println!("{verb} upload {u}");
            }
            println!(
                "{} blobs kept, {} blobs {verb} ({} bytes), {} manifests {verb}, {} uploads {verb}",
                report.blobs_kept,
                report.blobs_deleted.len(),
                report.bytes_freed,
                report.manifests_deleted.len(),
                report.uploads_deleted.len()
            );
        }
        Cmd::HashPassword { user } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
            let pass = line.trim_end_matches(['\n', '\r']);
            let hash = bcrypt::hash(pass, bcrypt::DEFAULT_COST).context("hashing")?;
            println!("{user}:{hash}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

//! `rbuild build`: flags compatible with `docker build`, validated into a
//! [`BuildRequest`], then the builder does the work.

use rbuild_builder::{BuildRequest, CacheSpec, ContextSource, OutputSpec, Progress, ProgressMode};
use rbuild_image::{Compression, Reference};
use rbuild_runtime::sandbox::SecretSource;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `rbuild build`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name the image NAME[:TAG]; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from stdin.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// A build argument KEY=VALUE (or KEY, taken from the environment); repeatable.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build this stage (by name) instead of the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages; repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Always ask the registry for base images, even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// The platform (only this machine's is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// Set a label on the image KEY=VALUE; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Network for RUN: default, host or none.
    #[arg(long)]
    pub network: Option<String>,
    /// Allow an entitlement: security.insecure (RUN --security=insecure: every capability, no seccomp).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR]; repeatable.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// An SSH agent socket for RUN --mount=type=ssh: default or ID=SOCKET; repeatable.
    #[arg(long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// Progress output: auto (tty on a terminal, else plain), plain, tty (a live view) or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Only print the image ID (like --progress quiet).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (JSON) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Output: type=image|registry|oci|docker|local|tar[,dest=PATH][,name=…][,push=true]; repeatable.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to its registry (every -t).
    #[arg(long)]
    pub push: bool,
    /// Accepted for docker compatibility: the image always goes to the local store.
    #[arg(long)]
    pub load: bool,
    /// Layer compression when layers leave the machine: gzip, zstd or none.
    #[arg(long)]
    pub compression: Option<String>,
    /// Compression level (gzip 0-9, zstd 1-22 or negative for faster).
    #[arg(long = "compression-level", allow_negative_numbers = true)]
    pub compression_level: Option<i32>,
    /// Timestamp for reproducible images (clamps file times, sets created).
    #[arg(long = "source-date-epoch", env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<String>,
    /// Import build cache: type=local,src=DIR or type=registry,ref=REF; repeatable.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export build cache: type=local,dest=DIR or type=registry,ref=REF; repeatable.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Print the lowered build graph as JSON and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// The build context: a directory, or `-` for a tar on stdin.
    #[arg(default_value = ".")]
    pub context: String,
}

fn kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => anyhow::bail!("{what} {s:?}: expected KEY=VALUE"),
    }
}

fn secret(s: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for f in s.split(',') {
        match f.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => anyhow::bail!("--secret {s:?}: expected id=ID[,src=FILE|,env=VAR]"),
        }
    }
    let id = id.ok_or_else(|| anyhow::anyhow!("--secret {s:?}: id= is required"))?;
    let source = match (src, env) {
        (Some(p), _) => {
            if !p.exists() {
                anyhow::bail!("--secret {s:?}: {} does not exist", p.display());
            }
            SecretSource::File(p)
        }
        (None, Some(v)) => SecretSource::Env(v),
        // Docker: with neither, the env var named like the id.
        (None, None) => SecretSource::Env(id.clone()),
    };
    Ok((id, source))
}

/// Turn the flags into a request.
pub fn request(args: &Args) -> anyhow::Result<BuildRequest> {
    let context =
        if args.context == "-" { ContextSource::Stdin } else { ContextSource::Dir(PathBuf::from(&args.context)) };
    let mut req = BuildRequest { context: Some(context), ..Default::default() };
    match args.file.as_deref() {
        Some("-") => {
            if args.context == "-" {
                anyhow::bail!("-f - and a context of - cannot both read stdin");
            }
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t)?;
            req.dockerfile_text = Some(t);
        }
        Some(p) => req.dockerfile = Some(PathBuf::from(p)),
        None => {}
    }
    for a in &args.build_args {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                Err(_) => continue,
            },
        };
        req.build_args.insert(k, v);
    }
    req.target = args.target.clone();
    for t in &args.tags {
        let r = Reference::parse(t).map_err(|e| anyhow::anyhow!("-t {t}: {e}"))?;
        if r.digest().is_some() {
            anyhow::bail!("-t {t}: a tag cannot carry a digest");
        }
        req.tags.push(r.with_default_tag());
    }
    req.no_cache = args.no_cache;
    req.no_cache_filter = args.no_cache_filter.clone();
    req.pull = args.pull;
    req.platform = args.platform.clone();
    req.labels = args.labels.iter().map(|l| kv(l, "--label")).collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    if let Some(n) = &args.network {
        if !matches!(n.as_str(), "default" | "host" | "none") {
            anyhow::bail!("--network {n}: use default, host or none");
        }
        req.network = Some(n.clone());
    }
    for a in &args.allow {
        if a != "security.insecure" {
            anyhow::bail!("--allow {a}: unknown entitlement (security.insecure)");
        }
        req.allow.push(a.clone());
    }
    for s in &args.secrets {
        let (id, src) = secret(s)?;
        req.secrets.insert(id, src);
    }
    for s in &args.ssh {
        let (id, path) = match s.split_once('=') {
            Some((id, p)) => (id.to_string(), PathBuf::from(p)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(p) => (s.clone(), PathBuf::from(p)),
                None => anyhow::bail!("--ssh {s}: SSH_AUTH_SOCK is not set; use --ssh {s}=/path/to/agent.sock"),
            },
        };
        req.ssh.insert(id, path);
    }
    req.progress = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::parse(&args.progress)
            .ok_or_else(|| anyhow::anyhow!("--progress {}: use auto, plain, tty or quiet", args.progress))?
    };
    req.outputs = args.outputs.iter().map(|o| OutputSpec::parse(o)).collect::<Result<_, _>>()?;
    req.push = args.push;
    req.compression = match args.compression.as_deref() {
        None => None,
        Some("gzip") => Some(Compression::Gzip),
        Some("zstd") => Some(Compression::Zstd),
        Some("none" | "uncompressed") => Some(Compression::None),
        Some(o) => anyhow::bail!("--compression {o}: use gzip, zstd or none"),
    };
    if let Some(level) = args.compression_level {
        // Without --compression, layers that leave the machine are gzip.
        let c = req.compression.unwrap_or(Compression::Gzip);
        match c.levels() {
            Some(r) if r.contains(&level) => {}
            Some(r) => anyhow::bail!(
                "--compression-level {level}: {} levels are {} to {}",
                args.compression.as_deref().unwrap_or("gzip"),
                r.start(),
                r.end()
            ),
            None => anyhow::bail!("--compression-level {level}: --compression none has no levels"),
        }
    }
    req.compression_level = args.compression_level;
    req.source_date_epoch = match args.source_date_epoch.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<i64>().map_err(|_| anyhow::anyhow!("--source-date-epoch {s}: expected seconds since 1970"))?,
        ),
    };
    req.cache_from = args.cache_from.iter().map(|c| CacheSpec::parse(c)).collect::<Result<_, _>>()?;
    req.cache_to = args.cache_to.iter().map(|c| CacheSpec::parse(c)).collect::<Result<_, _>>()?;
    req.dry_run = args.dry_run;
    Ok(req)
}

/// Run `rbuild build`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let req = request(&args)?;
    let store = g.store()?;
    let progress = Arc::new(Progress::stderr(req.progress));
    // Ctrl-C / SIGTERM: the build stops, cleans up and exits 130 / 143.
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rbuild_builder::cancel::cancel_on_signals(&cancel);
    let result = rbuild_builder::build(&store, &req, progress.clone(), cancel.clone());
    progress.finish();
    let built = match result {
        Ok(b) => b,
        Err(e) if matches!(e, rbuild_builder::Error::Cancelled) || cancel.load(std::sync::atomic::Ordering::SeqCst) => {
            eprintln!("ERROR: build cancelled");
            return Ok(rbuild_builder::cancel::exit_code(rbuild_builder::cancel::cancelled_by()));
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(1);
        }
    };
    if let Some(j) = built.graph_json {
        println!("{j}");
        return Ok(0);
    }
    if let Some(p) = &args.iidfile {
        std::fs::write(p, built.image_id.to_string()).map_err(|e| anyhow::anyhow!("--iidfile {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.metadata_file {
        let names: Vec<String> = built.tags.iter().map(|t| t.to_string()).collect();
        let mut m = serde_json::json!({
            "containerimage.config.digest": built.image_id.to_string(),
            "containerimage.digest": built.manifest.digest.to_string(),
            "containerimage.descriptor": built.manifest,
            "image.name": names.join(","),
        });
        if !built.pushed.is_empty() {
            m["pushed"] = serde_json::json!(built.pushed.iter().map(|(r, d)| format!("{r}@{d}")).collect::<Vec<_>>());
        }
        std::fs::write(p, serde_json::to_vec_pretty(&m)?)
            .map_err(|e| anyhow::anyhow!("--metadata-file {}: {e}", p.display()))?;
    }
    // The progress output already said "writing image …" and "naming to …", once each.
    if req.progress == ProgressMode::Quiet {
        println!("{}", built.image_id);
    }
    Ok(0)
}

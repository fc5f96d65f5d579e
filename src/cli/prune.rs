//! `rbuild prune`: remove stopped containers, untagged images, the blobs no tag reaches,
//! unused snapshots, and (with `--cache`) build cache entries.

use std::collections::HashSet;

/// Flags of `rbuild prune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also drop the build cache's pins (gc roots), so only tags keep blobs.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Trim the build cache first (all of it, unless --keep-storage or --filter limit it).
    #[arg(long)]
    pub cache: bool,
    /// With --cache: keep the most recently used cache entries up to this size (e.g. 10GB).
    #[arg(long, value_name = "SIZE", requires = "cache")]
    pub keep_storage: Option<String>,
    /// With --cache: `until=DURATION` (e.g. until=24h) removes only entries unused for longer.
    #[arg(long, value_name = "FILTER", requires = "cache")]
    pub filter: Vec<String>,
}

/// Run `rbuild prune`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    if args.cache && !args.dry_run {
        let keep = match &args.keep_storage {
            Some(s) => Some(
                rbuild_builder::cache::parse_size(s)
                    .ok_or_else(|| anyhow::anyhow!("--keep-storage {s:?}: expected a size like 512MB or 10GB"))?,
            ),
            None => None,
        };
        let mut until = None;
        for f in &args.filter {
            let d = f
                .strip_prefix("until=")
                .ok_or_else(|| anyhow::anyhow!("--filter {f:?}: only until=DURATION is supported"))?;
            until = Some(
                rbuild_builder::cache::parse_duration(d)
                    .ok_or_else(|| anyhow::anyhow!("--filter {f:?}: expected a duration like 24h or 90m"))?,
            );
        }
        let r = rbuild_builder::cache::prune(&store, keep, until)?;
        println!("Build cache: {} entries removed, {} kept", r.records_removed, r.records_kept);
    }
    // Stopped containers go first (with their layers), so their images can go too.
    let (containers, _) = super::container::remove_stopped(store.root(), &[], args.dry_run)?;
    for id in &containers {
        println!("{} container: {id}", if args.dry_run { "Would remove" } else { "Deleted" });
    }
    if !args.dry_run {
        // Snapshots of tagged images stay (with their ancestors); the rest is extracted again when needed.
        let mut keep = HashSet::new();
        for (reference, _) in store.list_tags()? {
            if let Ok(image) = store.resolve(&reference.to_string()) {
                if let Some(top) = rbuild_runtime::snapshot::chain_ids(&image.config.rootfs.diff_ids).last() {
                    keep.insert(top.to_string());
                }
            }
        }
        // What killed sandboxes and builds left in <root>/tmp goes first (it may hold
        // snapshots' mounts' scratch).
        rbuild_runtime::sandbox::cleanup_stale(store.root());
        let trees = rbuild_runtime::sandbox::store_trees(store.root());
        let snaps = rbuild_runtime::snapshot::prune(store.root(), trees, &keep)?;
        if !snaps.removed.is_empty() {
            println!("Removed {} unused snapshots", snaps.removed.len());
        }
    }
    // Untagged images go too, as with `docker image prune`.
    let mut opts =
        rbuild_image::store::GcOptions { dry_run: args.dry_run, ignore_roots: args.all, no_wait: true, untagged: true };
    let mut report = store.gc_with(opts)?;
    if report.deferred {
        eprintln!("waiting for other rbuild processes writing to the store to finish…");
        opts.no_wait = false;
        report = store.gc_with(opts)?;
    }
    let verb = if args.dry_run { "Would remove" } else { "Deleted" };
    for d in &report.untagged_removed {
        println!("{} untagged image: {d}", if args.dry_run { "Would remove" } else { "Removed" });
    }
    for (d, size) in &report.removed {
        println!("{verb}: {d} ({})", super::images::human_size(*size));
    }
    if report.roots_removed > 0 {
        println!(
            "{} build cache pins {}",
            report.roots_removed,
            if args.dry_run { "would be dropped" } else { "dropped" }
        );
    }
    if report.stale_ingests > 0 {
        println!(
            "Removed {} interrupted downloads and writes ({})",
            report.stale_ingests,
            super::images::human_size(report.stale_ingest_bytes)
        );
    }
    println!(
        "Total reclaimed space: {}{} ({} blobs, {} kept)",
        super::images::human_size(report.freed_bytes),
        if args.dry_run { " (dry run)" } else { "" },
        report.removed.len(),
        report.kept
    );
    Ok(0)
}

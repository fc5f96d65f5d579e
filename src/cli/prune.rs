//! `rbuild prune`: remove the blobs no tag reaches.

/// Flags of `rbuild prune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also drop the build cache's pins (gc roots), so only tags keep blobs.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Run `rbuild prune`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    let mut opts = rbuild_image::store::GcOptions { dry_run: args.dry_run, ignore_roots: args.all, no_wait: true };
    let mut report = store.gc_with(opts)?;
    if report.deferred {
        eprintln!("waiting for other rbuild processes writing to the store to finish…");
        opts.no_wait = false;
        report = store.gc_with(opts)?;
    }
    let verb = if args.dry_run { "Would remove" } else { "Deleted" };
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
    println!(
        "Total reclaimed space: {}{} ({} blobs, {} kept)",
        super::images::human_size(report.freed_bytes),
        if args.dry_run { " (dry run)" } else { "" },
        report.removed.len(),
        report.kept
    );
    Ok(0)
}

//! `rbuild images`: list the images in the local store, like `docker images`.

use rbuild_image::Reference;
/// Sizes as docker prints them (`4.23MB`): the same for images, ps, volumes and prune.
pub use rbuild_runtime::container::format::human_size;

/// Flags of `rbuild images`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the manifest digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate image IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show all images (accepted for docker compatibility: untagged images are always
    /// listed, as `<none>`, and there are no intermediate images to add).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only images that match: `dangling=true|false` (untagged or not),
    /// `reference=NAME[:TAG]`, `label=KEY[=VALUE]`; repeatable, all must match.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Only images of this repository (and tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// One `--filter`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Dangling(bool),
    Reference(String),
    Label(String, Option<String>),
}

fn parse_filter(s: &str) -> anyhow::Result<Filter> {
    let Some((k, v)) = s.split_once('=') else {
        anyhow::bail!("--filter {s:?}: expected KEY=VALUE (dangling, reference or label)");
    };
    Ok(match k {
        "dangling" => match v {
            "true" | "1" => Filter::Dangling(true),
            "false" | "0" => Filter::Dangling(false),
            _ => anyhow::bail!("--filter {s:?}: dangling is true or false"),
        },
        "reference" => {
            Reference::parse(v).map_err(|e| anyhow::anyhow!("--filter {s:?}: {e}"))?;
            Filter::Reference(v.to_string())
        }
        "label" => match v.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(v.to_string(), None),
        },
        _ => anyhow::bail!("--filter {s:?}: unknown filter {k:?} (dangling, reference or label)"),
    })
}

fn passes(f: &Filter, r: Option<&Reference>, img: &rbuild_image::store::Image) -> bool {
    match f {
        Filter::Dangling(d) => r.is_none() == *d,
        Filter::Reference(p) => r.is_some_and(|r| matches_filter(r, p)),
        Filter::Label(k, v) => {
            let have = img.config.config.as_ref().and_then(|c| c.labels.get(k));
            have.is_some_and(|have| v.as_ref().is_none_or(|want| want == have))
        }
    }
}

/// A past time as docker says it: "2 hours ago", "About a minute ago".
pub fn human_ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
    if secs < 0 {
        return "Less than a second ago".into();
    }
    let (m, h) = (secs / 60, secs / 3600);
    let s = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if m == 1 => "About a minute".to_string(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".to_string(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    };
    format!("{s} ago")
}

/// Print rows as aligned columns, three spaces apart, like docker's tabwriter.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn matches_filter(r: &Reference, filter: &str) -> bool {
    // `busybox`, `busybox:latest`, `docker.io/library/busybox`… compare normalized names;
    // with no tag in the filter, every tag of the repository matches.
    let Ok(f) = Reference::parse(filter) else { return false };
    f.name() == r.name() && f.tag().is_none_or(|t| Some(t) == r.tag())
}

/// Run `rbuild images`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    if let Some(f) = &args.repository {
        Reference::parse(f)?;
    }
    let filters = args.filters.iter().map(|f| parse_filter(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let store = g.store()?;
    let mut rows = vec![];
    let mut header = vec!["REPOSITORY".to_string(), "TAG".into()];
    if args.digests {
        header.push("DIGEST".into());
    }
    header.extend(["IMAGE ID".to_string(), "CREATED".into(), "SIZE".into()]);
    rows.push(header);
    let mut seen_ids = Vec::new();
    for (r, d) in store.list_images()? {
        if args.repository.as_deref().is_some_and(|f| r.as_ref().is_none_or(|r| !matches_filter(r, f))) {
            continue;
        }
        let img = match store.load_image(&d, r.clone()) {
            Ok(i) => i,
            Err(e) => {
                let what = r.as_ref().map(|r| r.familiar()).unwrap_or_else(|| d.digest.to_string());
                tracing::warn!("{what}: {e}");
                continue;
            }
        };
        if !filters.iter().all(|f| passes(f, r.as_ref(), &img)) {
            continue;
        }
        let id = if args.no_trunc { img.config_digest.to_string() } else { img.config_digest.short().to_string() };
        if args.quiet {
            if !seen_ids.contains(&id) {
                println!("{id}");
                seen_ids.push(id);
            }
            continue;
        }
        let mut row = match &r {
            Some(r) => vec![r.familiar_name(), r.tag().unwrap_or("<none>").to_string()],
            None => vec!["<none>".to_string(), "<none>".to_string()],
        };
        if args.digests {
            row.push(d.digest.to_string());
        }
        row.extend([id, human_ago(img.config.created.as_deref()), human_size(img.size())]);
        rows.push(row);
    }
    if !args.quiet {
        print_table(&rows);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_230_000), "4.23MB");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(123_456_789), "123MB");
    }
}

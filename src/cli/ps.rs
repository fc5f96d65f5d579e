//! `rbuild ps`: list containers, like `docker ps`. Reads each record's config and state
//! files and nothing else (no process is started per container), so a long list is fast.

use rbuild_runtime::container::format::{self, Format, PsRow};
use rbuild_runtime::container::mounts::MountType;
use rbuild_runtime::container::{Config, Containers, State};
use std::collections::BTreeMap;

/// Flags of `rbuild ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all containers (default: only running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only print container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show sizes: the writable layer, and the image beneath it as "virtual".
    #[arg(short = 's', long)]
    pub size: bool,
    /// Don't truncate IDs, commands or images.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the N most recently created containers (all states).
    #[arg(short = 'n', long = "last", value_name = "N", allow_negative_numbers = true)]
    pub last: Option<i64>,
    /// Show the most recently created container (all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Only containers that match: status=, name=, id=, ancestor=, label=KEY[=VALUE],
    /// exited=CODE, before=, since=, volume=, network=. Repeatable: values of one key are
    /// alternatives, different keys must all match.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Output: `table TEMPLATE`, `json`, or a Go template (`{{.ID}} {{.Names}}`).
    #[arg(long)]
    pub format: Option<String>,
}

/// The filters, grouped by key.
type Filters = BTreeMap<String, Vec<String>>;

const STATUSES: &[&str] = &["created", "restarting", "running", "removing", "paused", "exited", "dead"];
const KEYS: &[&str] = &["status", "name", "id", "ancestor", "label", "exited", "before", "since", "volume", "network"];

fn parse_filters(list: &[String]) -> anyhow::Result<Filters> {
    let mut out = Filters::new();
    for f in list {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("--filter {f:?}: expected KEY=VALUE ({})", KEYS.join(", "));
        };
        if !KEYS.contains(&k) {
            anyhow::bail!("--filter {f:?}: invalid filter {k:?} ({})", KEYS.join(", "));
        }
        if k == "status" && !STATUSES.contains(&v) {
            anyhow::bail!("--filter {f:?}: invalid status {v:?} ({})", STATUSES.join(", "));
        }
        if k == "exited" && v.parse::<i32>().is_err() {
            anyhow::bail!("--filter {f:?}: exited takes an exit code (a number)");
        }
        out.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(out)
}

/// One container, read.
struct Entry {
    config: Config,
    state: State,
    created: Option<chrono::DateTime<chrono::Utc>>,
}

fn time(s: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = chrono::DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&chrono::Utc);
    // Go's zero time means "never".
    (t.timestamp() > 0).then_some(t)
}

/// `name=` is docker's regular-expression match; a plain substring here, with `^` and `$`
/// anchors.
fn name_matches(name: &str, pat: &str) -> bool {
    let (start, p) = match pat.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pat),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    match (start, end) {
        (true, true) => name == p,
        (true, false) => name.starts_with(p),
        (false, true) => name.ends_with(p),
        (false, false) => name.contains(p),
    }
}

/// Does `e` pass every filter but before/since (which need the whole list)?
fn passes(e: &Entry, f: &Filters, ancestors: &[String]) -> bool {
    let any = |k: &str, ok: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|vs| vs.iter().any(|v| ok(v)));
    let status = e.state.status.as_str();
    let label_ok = f.get("label").is_none_or(|vs| {
        vs.iter().all(|v| match v.split_once('=') {
            Some((k, want)) => e.config.labels.get(k).is_some_and(|have| have == want),
            None => e.config.labels.contains_key(v.as_str()),
        })
    });
    any("status", &|v| v == status)
        && any("id", &|v| e.config.id.starts_with(v))
        && any("name", &|v| name_matches(&e.config.name, v))
        && any("exited", &|v| status == "exited" && v.parse() == Ok(e.state.exit_code))
        && any("ancestor", &|v| {
            e.config.image == v || e.config.image.split(':').next() == Some(v) || ancestors.contains(&e.config.image_id)
        })
        && any("volume", &|v| {
            e.config.volumes.iter().any(|n| n == v) || e.config.mounts.iter().any(|m| m.destination == v)
        })
        && any("network", &|v| serde_json::to_value(e.config.network).is_ok_and(|n| n == v))
        && label_ok
}

/// Bytes in the regular files under `dir` (symlinks not followed).
fn du(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += du(&e.path()),
            Ok(t) if t.is_file() => n += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    n
}

/// (writable layer, writable layer + image) bytes of a container.
pub(crate) fn sizes(
    sn: Option<&dyn rbuild_runtime::snapshot::Snapshotter>,
    store: Option<&rbuild_image::Store>,
    c: &Config,
) -> (u64, u64) {
    use rbuild_runtime::snapshot::DiffSource;
    let image = store.and_then(|s| s.resolve(&c.image_id).ok()).map(|i| i.size()).unwrap_or(0);
    let rw = match sn.and_then(|sn| sn.diff_source(&c.snapshot).ok()) {
        Some(DiffSource::Upper { upper }) => du(&upper),
        Some(DiffSource::Walk { lower, upper }) => du(&upper).saturating_sub(lower.map(|l| du(&l)).unwrap_or(0)),
        None => 0,
    };
    (rw, image + rw)
}

/// Run `rbuild ps`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let filters = parse_filters(&args.filters)?;
    let limit = if args.latest { Some(1) } else { args.last.filter(|n| *n >= 0).map(|n| n as usize) };
    // docker: -n, -l and a status filter show containers in every state.
    let all = args.all || limit.is_some() || filters.contains_key("status");
    let fmt = match (&args.format, args.quiet) {
        (_, true) => Format::parse("{{.ID}}", "")?,
        (Some(f), false) if !f.is_empty() => Format::parse(f, &format::ps_default_table(args.size))?,
        _ => Format::parse(&format!("table {}", format::ps_default_table(args.size)), "")?,
    };
    fmt.check(&format::ps_header())?;
    let store_records = Containers::open(&g.root);
    let mut entries: Vec<Entry> = Vec::new();
    for c in store_records.list() {
        // A record being removed meanwhile is simply not listed.
        let (Ok(config), Ok(state)) = (c.config(), c.checked_state()) else { continue };
        let created = time(Some(&config.created));
        entries.push(Entry { config, state, created });
    }
    entries.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.config.id.cmp(&b.config.id)));

    // before= / since=: containers created before / after the one named.
    for (key, before) in [("before", true), ("since", false)] {
        for v in filters.get(key).into_iter().flatten() {
            let c = store_records.resolve(v).map_err(|e| anyhow::anyhow!("--filter {key}={v}: {e}"))?;
            let pivot = entries
                .iter()
                .find(|e| e.config.id == c.id)
                .map(|e| e.created)
                .ok_or_else(|| anyhow::anyhow!("--filter {key}={v}: no such container"))?;
            entries.retain(|e| if before { e.created < pivot } else { e.created > pivot });
        }
    }
    let needs_store = filters.contains_key("ancestor") || args.size || fmt.mentions("Size");
    let store = if needs_store { Some(g.store()?) } else { None };
    let ancestors: Vec<String> = filters
        .get("ancestor")
        .into_iter()
        .flatten()
        .filter_map(|a| store.as_ref().and_then(|s| s.resolve(a).ok()).map(|i| i.config_digest.to_string()))
        .collect();
    entries.retain(|e| passes(e, &filters, &ancestors) && (all || e.state.status.is_active()));
    if let Some(n) = limit {
        entries.truncate(n);
    }

    let want_size = !args.quiet && (args.size || fmt.mentions("Size"));
    let sn = if want_size {
        rbuild_runtime::snapshot::open(&g.root, rbuild_runtime::sandbox::store_trees(&g.root)).ok()
    } else {
        None
    };
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for e in &entries {
        let c = &e.config;
        let mut mounts = Vec::new();
        let mut local_volumes = 0;
        for m in &c.mounts {
            match (&m.kind, &m.name) {
                (MountType::Volume, Some(name)) => {
                    mounts.push(name.clone());
                    local_volumes += 1;
                }
                _ => mounts.push(m.destination.clone()),
            }
        }
        let row = PsRow {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            command: c.argv(),
            created: e.created,
            status: e.state.status.as_str().to_string(),
            exit_code: i64::from(e.state.exit_code),
            started_at: time(e.state.started_at.as_deref()),
            finished_at: time(e.state.finished_at.as_deref()),
            labels: c.labels.clone(),
            mounts,
            local_volumes,
            networks: serde_json::to_value(c.network)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            ports: String::new(),
            size: want_size.then(|| sizes(sn.as_deref(), store.as_ref(), c)),
        };
        rows.push(row.to_value(args.no_trunc, now));
        labels.push(row);
    }
    let text = fmt.render(&rows, &format::ps_header(), &|i, m, a| match (m, a) {
        ("Label", [serde_json::Value::String(k)]) => Some(serde_json::Value::String(labels[i].label(k))),
        _ => None,
    })?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_say_why() {
        let f = parse_filters(&["status=exited".into(), "status=running".into(), "label=a=b".into()]).unwrap();
        assert_eq!(f["status"], ["exited", "running"]);
        assert_eq!(f["label"], ["a=b"]);
        for (bad, want) in [
            ("nokey", "expected KEY=VALUE"),
            ("colour=red", "invalid filter \"colour\""),
            ("status=sleeping", "invalid status \"sleeping\""),
            ("exited=x", "exit code"),
        ] {
            let e = parse_filters(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn names_match_as_substrings_with_anchors() {
        assert!(name_matches("web-1", "web"));
        assert!(name_matches("/web-1", "^web"));
        assert!(!name_matches("myweb", "^web"));
        assert!(name_matches("web-1", "-1$"));
        assert!(name_matches("web", "^web$"));
        assert!(!name_matches("web2", "^web$"));
    }
}

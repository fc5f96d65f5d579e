//! `rbuild stats`: CPU, memory and pids of containers from their cgroups, as docker's
//! `stats`: docker's columns, sizes and `--format`; refreshed every second until
//! interrupted, or one sample with `--no-stream`.

use rbuild_runtime::cgroup::{Cgroup, Stats};
use rbuild_runtime::container::{Container, Containers};
use std::time::{Duration, Instant};

/// Flags of `rbuild stats`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all containers (default: the running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one sample and exit (default: refresh every second).
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate the output (full container IDs).
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format: `table` (default), `json`, or a Go template such as
    /// '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.PIDs}}' (also .Container, .ID, .NetIO, .BlockIO).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// The containers (ID, name or ID prefix); default: every running one.
    pub containers: Vec<String>,
}

/// One container's figures, as `stats` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The name or ID as given (`{{.Container}}`).
    pub container: String,
    /// The ID (12 hex unless --no-trunc).
    pub id: String,
    /// The name.
    pub name: String,
    /// CPU %, from two samples; `None` when it does not run.
    pub cpu: Option<f64>,
    /// Memory in use (without inactive file cache) and the limit (the host's memory when unlimited).
    pub mem: Option<(u64, u64)>,
    /// Processes.
    pub pids: Option<u64>,
}

/// docker's `units.BytesSize`: binary units, 4 significant digits (`1.523MiB`, `16MiB`).
pub fn bytes_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{}{}", sig4(v), UNITS[u])
}

/// `%.4g` for 0 <= v < 10000.
fn sig4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = if v >= 1.0 { v.log10().floor() as i32 + 1 } else { 0 };
    let decimals = (4 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

impl Row {
    fn field(&self, key: &str) -> Option<String> {
        let dash = || "--".to_string();
        Some(match key {
            "Container" => self.container.clone(),
            "ID" => self.id.clone(),
            "Name" => self.name.clone(),
            "CPUPerc" => self.cpu.map(|c| format!("{c:.2}%")).unwrap_or_else(dash),
            "MemUsage" => self.mem.map(|(u, l)| format!("{} / {}", bytes_size(u), bytes_size(l))).unwrap_or_else(dash),
            "MemPerc" => self
                .mem
                .map(|(u, l)| format!("{:.2}%", if l > 0 { u as f64 * 100.0 / l as f64 } else { 0.0 }))
                .unwrap_or_else(dash),
            // Host or no network: no interface of its own to count.
            "NetIO" => "0B / 0B".into(),
            "BlockIO" => dash(),
            "PIDs" => self.pids.map(|p| p.to_string()).unwrap_or_else(dash),
            _ => return None,
        })
    }

    fn json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for k in ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"] {
            m.insert(k.into(), self.field(k).unwrap_or_default().into());
        }
        serde_json::Value::Object(m)
    }
}

/// The header of a `{{.Key}}` column, docker's.
fn header(key: &str) -> &'static str {
    match key {
        "Container" => "CONTAINER",
        "ID" => "CONTAINER ID",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        _ => "",
    }
}

const DEFAULT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// The keys a template names, checked: an unknown `{{.X}}` is an error naming it.
fn keys(template: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else { anyhow::bail!("--format {template:?}: unclosed {{{{") };
        let inner = rest[i + 2..i + j].trim();
        let key = inner.strip_prefix('.').unwrap_or(inner);
        if header(key).is_empty() {
            anyhow::bail!(
                "--format: unknown field {inner:?} (Container, ID, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs)"
            );
        }
        out.push(key.to_string());
        rest = &rest[i + j + 2..];
    }
    Ok(out)
}

/// Fill `template` (without `table `) for `row`; `\t` separates table columns.
fn fill(template: &str, row: &Row) -> String {
    let mut s = template.replace("\\t", "\t").replace("\\n", "\n");
    for k in keys(template).unwrap_or_default() {
        for spelled in [format!("{{{{.{k}}}}}"), format!("{{{{ .{k} }}}}")] {
            s = s.replace(&spelled, &row.field(&k).unwrap_or_default());
        }
    }
    s
}

/// Render the rows by `format` (None: docker's table).
pub fn render(format: Option<&str>, rows: &[Row]) -> anyhow::Result<String> {
    let f = format.unwrap_or(DEFAULT);
    if f == "json" || f == "{{json .}}" {
        return Ok(rows.iter().map(|r| format!("{}\n", r.json())).collect());
    }
    let Some(t) = f.strip_prefix("table") else {
        keys(f)?;
        return Ok(rows.iter().map(|r| format!("{}\n", fill(f, r))).collect());
    };
    let t = t.trim_start();
    let t = if t.is_empty() { &DEFAULT["table ".len()..] } else { t };
    let ks = keys(t)?;
    let mut head = t.replace("\\t", "\t");
    for k in &ks {
        for spelled in [format!("{{{{.{k}}}}}"), format!("{{{{ .{k} }}}}")] {
            head = head.replace(&spelled, header(k));
        }
    }
    let mut lines: Vec<Vec<String>> = vec![head.split('\t').map(str::to_string).collect()];
    lines.extend(rows.iter().map(|r| fill(t, r).split('\t').map(str::to_string).collect()));
    // docker's tabwriter: columns padded to the widest cell plus three spaces.
    let n = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..n).map(|i| lines.iter().filter_map(|l| l.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            if i + 1 < l.len() {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// The host's memory (what docker shows as the limit of an unlimited container).
fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A container and what its cgroup said when.
struct Sample {
    given: String,
    id: String,
    name: String,
    at: Instant,
    stats: Option<Stats>,
}

fn sample(given: &str, c: &Container, no_trunc: bool) -> anyhow::Result<Sample> {
    let cfg = c.config()?;
    let st = c.checked_state()?;
    let stats = st.status.is_active().then(|| Cgroup::open(&st.cgroup).map(|cg| cg.stats())).flatten();
    let id = if no_trunc { cfg.id.clone() } else { cfg.short_id().to_string() };
    Ok(Sample { given: given.to_string(), id, name: cfg.name.clone(), at: Instant::now(), stats })
}

fn row(before: Option<&Sample>, now: &Sample, host: u64) -> Row {
    let cpu = match (before.and_then(|b| b.stats.as_ref().map(|s| (b.at, s))), &now.stats) {
        (Some((t0, s0)), Some(s1)) => {
            let wall = now.at.duration_since(t0).as_nanos() as f64;
            let used = s1.cpu_usage_ns.saturating_sub(s0.cpu_usage_ns) as f64;
            Some(if wall > 0.0 { used * 100.0 / wall } else { 0.0 })
        }
        (None, Some(_)) => Some(0.0),
        _ => None,
    };
    let mem = now.stats.as_ref().map(|s| {
        let limit = s.memory_limit.filter(|l| *l < host || host == 0).unwrap_or(host);
        (s.memory_usage.saturating_sub(s.inactive_file), limit)
    });
    Row {
        container: now.given.clone(),
        id: now.id.clone(),
        name: now.name.clone(),
        cpu,
        mem,
        pids: now.stats.as_ref().map(|s| s.pids),
    }
}

/// The containers to show: those named, else the running ones (all with -a).
fn targets(cs: &Containers, args: &Args) -> anyhow::Result<Vec<(String, Container)>> {
    if !args.containers.is_empty() {
        return args.containers.iter().map(|w| Ok((w.clone(), cs.resolve(w)?))).collect();
    }
    let mut out = Vec::new();
    for c in cs.list() {
        let active = c.checked_state().map(|s| s.status.is_active()).unwrap_or(false);
        if args.all || active {
            let short = c.config().map(|cfg| cfg.short_id().to_string()).unwrap_or_else(|_| c.id.clone());
            out.push((short, c));
        }
    }
    Ok(out)
}

/// Run `rbuild stats`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    if let Some(f) = &args.format {
        render(Some(f), &[])?;
    }
    let cs = Containers::open(&g.root);
    let host = host_memory();
    let take = |ts: &[(String, Container)]| -> anyhow::Result<Vec<Sample>> {
        ts.iter().map(|(g, c)| sample(g, c, args.no_trunc)).collect()
    };
    let mut ts = targets(&cs, &args)?;
    let mut before = take(&ts)?;
    loop {
        // docker's CPU % compares two samples a second apart.
        std::thread::sleep(Duration::from_secs(1));
        let now = take(&ts)?;
        let rows: Vec<Row> = now.iter().map(|n| row(before.iter().find(|b| b.id == n.id), n, host)).collect();
        let text = render(args.format.as_deref(), &rows)?;
        if args.no_stream {
            print!("{text}");
            return Ok(0);
        }
        print!("\x1b[2J\x1b[H{text}");
        std::io::Write::flush(&mut std::io::stdout())?;
        if args.containers.is_empty() {
            ts = targets(&cs, &args)?;
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Row {
        Row {
            container: "web".into(),
            id: "0123456789ab".into(),
            name: "web".into(),
            cpu: Some(1.5),
            mem: Some((1597 * 1024, 16 << 20)),
            pids: Some(3),
        }
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(16 << 20), "16MiB");
        assert_eq!(bytes_size(1597 * 1024), "1.56MiB");
        assert_eq!(bytes_size(1560 * 1024), "1.523MiB");
        assert_eq!(bytes_size(1023), "1023B");
        assert_eq!(bytes_size(24_000_000_000), "22.35GiB");
    }

    #[test]
    fn table_json_and_templates() {
        let t = render(None, &[r()]).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT"), "{t}");
        assert!(
            lines[1].contains("1.50%") && lines[1].contains("1.56MiB / 16MiB") && lines[1].contains("9.75%"),
            "{t}"
        );
        assert!(lines[1].ends_with("   3"), "{t}");
        assert_eq!(render(Some("{{.Name}}: {{.MemUsage}}"), &[r()]).unwrap(), "web: 1.56MiB / 16MiB\n");
        let j: serde_json::Value = serde_json::from_str(render(Some("json"), &[r()]).unwrap().trim()).unwrap();
        assert_eq!(j["PIDs"], "3");
        assert_eq!(j["MemPerc"], "9.75%");
        assert!(render(Some("{{.Nope}}"), &[]).unwrap_err().to_string().contains("Nope"));
        let t = render(Some("table {{.Name}}\t{{.PIDs}}"), &[r()]).unwrap();
        assert_eq!(t, "NAME   PIDS\nweb    3\n");
    }
}

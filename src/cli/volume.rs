//! `rbuild volume create|ls|inspect|rm|prune`: volumes in the store, like `docker volume`.
//! Also [`MountArgs`], the `-v`/`--mount`/`--volumes-from` flags that `run` and `create`
//! flatten in.

use rbuild_runtime::container::mounts::{Volume, VolumesFrom};
use rbuild_runtime::volume::{CreateOptions, VolumeInfo, Volumes};
use std::collections::BTreeMap;

/// The mount flags of `run` and `create` (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct MountArgs {
    /// Bind a host path, or mount a named or anonymous volume:
    /// HOST_PATH:CTR_PATH[:ro], NAME:CTR_PATH[:ro] or CTR_PATH (options: ro, rw, nocopy).
    #[arg(short = 'v', long = "volume", value_name = "[SRC:]DST[:OPTS]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    /// [,volume-opt=K=V][,volume-nocopy][,tmpfs-size=N].
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount every volume and bind of another container: CONTAINER[:ro|rw].
    #[arg(long = "volumes-from", value_name = "CONTAINER[:ro|rw]")]
    pub volumes_from: Vec<String>,
}

impl MountArgs {
    /// The `-v` and `--mount` flags, in the order given (`-v` first), checked.
    pub fn volumes(&self) -> anyhow::Result<Vec<Volume>> {
        let mut out = Vec::new();
        for v in &self.volume {
            out.push(Volume::parse(v)?);
        }
        for m in &self.mount {
            out.push(Volume::parse_mount(m)?);
        }
        Ok(out)
    }

    /// The `--volumes-from` flags, checked.
    pub fn volumes_from(&self) -> anyhow::Result<Vec<VolumesFrom>> {
        Ok(self.volumes_from.iter().map(|v| VolumesFrom::parse(v)).collect::<Result<_, _>>()?)
    }
}

/// Flags of `rbuild volume`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

/// `rbuild volume` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Create a volume (no NAME: a random 64-hex name); prints its name.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as docker's JSON.
    Inspect(InspectArgs),
    /// Remove volumes no container uses.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused anonymous volumes (all unused volumes with -a).
    Prune(PruneArgs),
}

/// Flags of `rbuild volume create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The volume driver (only local).
    #[arg(short = 'd', long = "driver", default_value = "local")]
    pub driver: String,
    /// Set metadata: KEY=VALUE (or KEY).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Driver options: type=tmpfs [o=size=64m], or type=none o=bind device=/host/dir.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// The name ([a-zA-Z0-9][a-zA-Z0-9_.-]+).
    pub name: Option<String>,
}

/// Flags of `rbuild volume ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Print only the names.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Keep only matching volumes: name=PART, label=KEY[=VALUE], dangling=true|false, driver=local.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Go template ({{.Name}}, {{.Driver}}, {{.Scope}}, {{.Mountpoint}}, {{.Labels}},
    /// {{.Label "KEY"}}, {{.CreatedAt}}), `table TEMPLATE`, or `json`.
    #[arg(long = "format")]
    pub format: Option<String>,
}

/// Flags of `rbuild volume inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Go template for each volume, or `json`.
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// The volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `rbuild volume rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// A volume that does not exist is no error (one in use is still refused).
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `rbuild volume prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove every unused volume, not only anonymous ones.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Prune only volumes matching label=KEY[=VALUE] or label!=KEY[=VALUE].
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// Run `rbuild volume ...`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let vols = Volumes::open(&g.root);
    match args.command {
        Sub::Create(a) => create(&vols, a),
        Sub::Ls(a) => ls(&vols, a),
        Sub::Inspect(a) => inspect(&vols, a),
        Sub::Rm(a) => rm(&vols, a),
        Sub::Prune(a) => prune(&vols, a),
    }
}

fn pairs(flag: &str, items: &[String], need_value: bool) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, v),
            None if !need_value => (i.as_str(), ""),
            None => anyhow::bail!("{flag} {i:?}: expected KEY=VALUE"),
        };
        if k.is_empty() {
            anyhow::bail!("{flag} {i:?}: the key is empty");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn create(vols: &Volumes, a: CreateArgs) -> anyhow::Result<i32> {
    let opts = CreateOptions {
        driver: a.driver,
        labels: pairs("--label", &a.label, false)?,
        options: pairs("--opt", &a.opt, true)?,
    };
    let (info, _) = vols.create(a.name.as_deref(), &opts)?;
    println!("{}", info.name);
    Ok(0)
}

/// Docker's inspect JSON for a volume.
fn inspect_json(vols: &Volumes, v: &VolumeInfo) -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": vols.mountpoint(&v.name),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// What `{{.X}}` gives for a volume in `volume ls --format`.
fn field(vols: &Volumes, v: &VolumeInfo, name: &str, arg: Option<&str>) -> Option<String> {
    Some(match name {
        "Name" => v.name.clone(),
        "Driver" => v.driver.clone(),
        "Scope" => "local".into(),
        "Mountpoint" => vols.mountpoint(&v.name).display().to_string(),
        "Labels" => v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(","),
        "Label" => v.labels.get(arg?).cloned().unwrap_or_default(),
        "CreatedAt" => v.created_at.clone(),
        "Size" | "Links" | "Availability" | "Group" | "Status" => "N/A".into(),
        _ => return None,
    })
}

/// The header `table` prints for a field.
fn header(name: &str) -> String {
    match name {
        "Name" => "VOLUME NAME".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// A `--format` template cut into literal text and `{{.Field}}` / `{{.Label "k"}}` /
/// `{{json .}}` pieces.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String, Option<String>),
    Json,
}

fn template(t: &str) -> anyhow::Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let end = rest[i..].find("}}").ok_or_else(|| anyhow::anyhow!("--format {t:?}: unclosed action"))?;
        let action = rest[i + 2..i + end].trim();
        if action == "json ." {
            out.push(Piece::Json);
        } else if let Some(f) = action.strip_prefix('.') {
            let (name, arg) = match f.split_once(' ') {
                Some((n, a)) => (n, Some(a.trim().trim_matches('"').to_string())),
                None => (f, None),
            };
            out.push(Piece::Field(name.to_string(), arg));
        } else {
            anyhow::bail!("--format {t:?}: unsupported action {{{{{action}}}}}");
        }
        rest = &rest[i + end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

fn ls_json(vols: &Volumes, v: &VolumeInfo) -> String {
    let labels = field(vols, v, "Labels", None).unwrap_or_default();
    serde_json::json!({
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels,
        "Links": "N/A",
        "Mountpoint": vols.mountpoint(&v.name),
        "Name": v.name,
        "Scope": "local",
        "Size": "N/A",
        "Status": "N/A",
    })
    .to_string()
}

fn render(vols: &Volumes, v: &VolumeInfo, pieces: &[Piece]) -> anyhow::Result<String> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(&t.replace("\\t", "\t").replace("\\n", "\n")),
            Piece::Json => s.push_str(&ls_json(vols, v)),
            Piece::Field(n, a) => s.push_str(
                &field(vols, v, n, a.as_deref())
                    .ok_or_else(|| anyhow::anyhow!("--format: a volume has no field {n:?}"))?,
            ),
        }
    }
    Ok(s)
}

/// Rows as docker's tabwriter prints them (cells at least 10 wide, 3 apart).
fn print_columns(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| (rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0) + 3).max(10))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Parsed `--filter`s: same key ORs, different keys AND (docker's rule).
fn filters(items: &[String], known: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in items {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("--filter {f:?}: expected KEY=VALUE"))?;
        // `label!=x` splits as ("label!", "x").
        if !known.contains(&k) {
            anyhow::bail!("--filter {f:?}: invalid filter {k:?} ({})", known.join(", "));
        }
        out.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(out)
}

fn label_matches(v: &VolumeInfo, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, x)) => v.labels.get(k).is_some_and(|have| have == x),
        None => v.labels.contains_key(want),
    }
}

fn bool_value(key: &str, s: &str) -> anyhow::Result<bool> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => anyhow::bail!("--filter {key}={s}: invalid value (true or false)"),
    }
}

fn ls(vols: &Volumes, a: LsArgs) -> anyhow::Result<i32> {
    let f = filters(&a.filter, &["name", "label", "dangling", "driver"])?;
    let dangling = match f.get("dangling") {
        Some(vs) => Some(vs.iter().map(|s| bool_value("dangling", s)).collect::<anyhow::Result<Vec<_>>>()?),
        None => None,
    };
    let users = if dangling.is_some() { vols.users()? } else { BTreeMap::new() };
    let keep = |v: &VolumeInfo| {
        f.get("name").is_none_or(|ns| ns.iter().any(|n| v.name.contains(n.as_str())))
            && f.get("driver").is_none_or(|ds| ds.contains(&v.driver))
            && f.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(v, l)))
            && dangling.as_ref().is_none_or(|ds| ds.iter().any(|d| *d != users.contains_key(&v.name)))
    };
    let list: Vec<VolumeInfo> = vols.list()?.into_iter().filter(keep).collect();
    if a.quiet {
        for v in &list {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    match a.format.as_deref() {
        Some("json") => {
            for v in &list {
                println!("{}", ls_json(vols, v));
            }
        }
        Some(t) if !t.starts_with("table") => {
            let pieces = template(t)?;
            for v in &list {
                println!("{}", render(vols, v, &pieces)?);
            }
        }
        t => {
            let t = t.and_then(|t| t.strip_prefix("table")).map(str::trim).filter(|t| !t.is_empty());
            let t = t.unwrap_or("{{.Driver}}\t{{.Name}}");
            let pieces = template(&t.replace("\\t", "\t"))?;
            // Columns are the tab-separated parts; the header names each one's fields.
            let mut rows = vec![
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Field(n, _) => header(n),
                        Piece::Text(t) => t.clone(),
                        Piece::Json => String::new(),
                    })
                    .collect::<String>()
                    .split('\t')
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ];
            for v in &list {
                rows.push(render(vols, v, &pieces)?.split('\t').map(str::to_string).collect());
            }
            print_columns(&rows);
        }
    }
    Ok(0)
}

fn inspect(vols: &Volumes, a: InspectArgs) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for n in &a.names {
        match vols.get(n) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    match a.format.as_deref() {
        None => {
            let all: Vec<_> = found.iter().map(|v| inspect_json(vols, v)).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Some("json") => {
            for v in &found {
                println!("{}", inspect_json(vols, v));
            }
        }
        Some(t) => {
            let pieces = template(t)?;
            for v in &found {
                let mut s = String::new();
                for p in &pieces {
                    match p {
                        Piece::Text(t) => s.push_str(&t.replace("\\t", "\t").replace("\\n", "\n")),
                        Piece::Json => s.push_str(&inspect_json(vols, v).to_string()),
                        Piece::Field(n, a) => match (inspect_json(vols, v).get(n), a) {
                            (Some(serde_json::Value::String(x)), _) => s.push_str(x),
                            (Some(serde_json::Value::Object(m)), Some(k)) => {
                                s.push_str(m.get(k).and_then(|x| x.as_str()).unwrap_or(""))
                            }
                            (Some(other), None) => s.push_str(&go_map(other)),
                            _ => anyhow::bail!("--format: a volume has no field {n:?}"),
                        },
                    }
                }
                println!("{s}");
            }
        }
    }
    Ok(code)
}

/// A JSON object as Go's template prints a map: `map[a:b c:d]`.
fn go_map(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => format!(
            "map[{}]",
            m.iter().map(|(k, x)| format!("{k}:{}", x.as_str().unwrap_or_default())).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

fn rm(vols: &Volumes, a: RmArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in &a.names {
        match vols.remove(n, a.force) {
            Ok(true) => println!("{n}"),
            Ok(false) => {}
            Err(e) => {
                eprintln!("error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(vols: &Volumes, a: PruneArgs) -> anyhow::Result<i32> {
    let f = filters(&a.filter, &["label", "label!"])?;
    if !a.force {
        use std::io::{BufRead, Write};
        let what = if a.all { "all local volumes" } else { "anonymous local volumes" };
        eprint!(
            "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            eprintln!();
        }
        if !matches!(line.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(0);
        }
    }
    let keep = |v: &VolumeInfo| {
        !(f.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(v, l)))
            && f.get("label!").is_none_or(|ls| ls.iter().all(|l| !label_matches(v, l))))
    };
    let removed = vols.prune(a.all, keep)?;
    let mut total = 0;
    if !removed.is_empty() {
        println!("Deleted Volumes:");
        for (n, size) in &removed {
            println!("{n}");
            total += size;
        }
        println!();
    }
    println!("Total reclaimed space: {}", super::images::human_size(total));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_cut_into_pieces() {
        assert_eq!(
            template("{{.Name}}: {{.Label \"a\"}}{{json .}}").unwrap(),
            vec![
                Piece::Field("Name".into(), None),
                Piece::Text(": ".into()),
                Piece::Field("Label".into(), Some("a".into())),
                Piece::Json,
            ]
        );
        assert!(template("{{.Name").is_err());
        assert!(template("{{range .}}").is_err());
    }

    #[test]
    fn filters_check_their_keys() {
        let f = filters(&["name=a".into(), "name=b".into(), "label=x=y".into()], &["name", "label"]).unwrap();
        assert_eq!(f["name"], vec!["a", "b"]);
        assert_eq!(f["label"], vec!["x=y"]);
        assert!(filters(&["colour=red".into()], &["name"]).unwrap_err().to_string().contains("colour"));
        assert!(filters(&["name".into()], &["name"]).is_err());
    }

    #[test]
    fn mount_flags_parse() {
        let m = MountArgs {
            volume: vec!["data:/d".into()],
            mount: vec!["type=tmpfs,dst=/t".into()],
            volumes_from: vec!["web:ro".into()],
        };
        assert_eq!(m.volumes().unwrap().len(), 2);
        assert_eq!(m.volumes_from().unwrap()[0].readonly, Some(true));
        let bad = MountArgs { mount: vec!["type=bind,dst=/x".into()], ..Default::default() };
        assert!(bad.volumes().unwrap_err().to_string().contains("source is required"));
    }
}

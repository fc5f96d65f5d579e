//! `rbuild inspect`: a container's record (config, state, limits, mounts) or an image's
//! config, manifest and store details, like `docker inspect`: a name is looked up as a
//! container first, then as an image, unless `--type` says which.

use serde_json::{Value, json};

/// Flags of `rbuild inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output: `json` (default), or a Go template (`{{.State.Status}}`, `{{json .Config}}`).
    #[arg(short = 'f', long, default_value = "json")]
    pub format: String,
    /// Print the raw bytes of the `manifest` or the `config` instead (images only).
    #[arg(long, value_parser = ["manifest", "config"])]
    pub raw: Option<String>,
    /// Only look for this kind of object: `container` or `image`.
    #[arg(long = "type", value_parser = ["container", "image"])]
    pub kind: Option<String>,
    /// For containers: add SizeRw (the writable layer) and SizeRootFs (with the image).
    #[arg(short = 's', long)]
    pub size: bool,
    /// Containers (name, ID or ID prefix) or images (name[:tag], name@digest, digest or ID
    /// prefix).
    #[arg(required = true, value_name = "NAME|ID")]
    pub images: Vec<String>,
}

/// The docker-inspect view of a container.
fn describe_container(
    g: &super::global::Global,
    c: &rbuild_runtime::container::Container,
    size: bool,
) -> anyhow::Result<Value> {
    use rbuild_runtime::container::inspect::{Extra, inspect};
    let config = c.config()?;
    let state = c.checked_state()?;
    let sn = rbuild_runtime::snapshot::open(&g.root, rbuild_runtime::sandbox::store_trees(&g.root)).ok();
    let graph = sn.as_ref().and_then(|sn| Some((sn.name().to_string(), sn.mounts(&config.snapshot).ok()?)));
    // Paths as docker shows them: absolute, also under a relative --root.
    let abs = |p: std::path::PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    let graph = graph.map(|(name, mounts)| {
        let mounts = mounts
            .into_iter()
            .map(|mut m| {
                m.options = m
                    .options
                    .iter()
                    .map(|o| match o.split_once('=') {
                        Some((k, v)) if matches!(k, "lowerdir" | "upperdir" | "workdir") => {
                            let dirs: Vec<String> = v.split(':').map(|d| abs(d.into())).collect();
                            format!("{k}={}", dirs.join(":"))
                        }
                        _ => o.clone(),
                    })
                    .collect();
                if m.fstype != "overlay" {
                    m.source = abs(m.source).into();
                }
                m
            })
            .collect();
        (name, mounts)
    });
    let extra = Extra { log_path: abs(c.log_path()), graph };
    let mut v = inspect(&config, &state, &extra);
    if size {
        let store = g.store().ok();
        let (rw, all) = super::ps::sizes(sn.as_deref(), store.as_ref(), &config);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(all);
    }
    Ok(v)
}

/// The docker-inspect-like view of one image.
fn describe(store: &rbuild_image::Store, img: &rbuild_image::store::Image) -> anyhow::Result<Value> {
    let tags = store.tags_of(&img.config_digest)?;
    let repo_tags: Vec<String> = tags.iter().map(|r| r.familiar()).collect();
    let mut repo_digests: Vec<String> = Vec::new();
    for r in &tags {
        let d = format!("{}@{}", r.familiar_name(), img.descriptor.digest);
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    let c = &img.config;
    let manifest: Value = serde_json::from_slice(img.manifest.bytes())?;
    let mut v = json!({
        "Id": img.config_digest.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Created": c.created,
        "Author": c.author.clone().unwrap_or_default(),
        "Architecture": c.architecture,
        "Os": c.os,
        "Config": c.config,
        "RootFS": {"Type": c.rootfs.kind, "Layers": c.rootfs.diff_ids},
        "Size": img.size(),
        "ManifestDigest": img.manifest.digest().to_string(),
        "ManifestMediaType": img.manifest.media_type(),
        "Manifest": manifest,
    });
    if let Some(var) = &c.variant {
        v["Variant"] = json!(var);
    }
    if img.descriptor.digest != *img.manifest.digest() {
        v["IndexDigest"] = json!(img.descriptor.digest.to_string());
    }
    if let Some(comment) = c.history.last().and_then(|h| h.comment.clone()) {
        v["Comment"] = json!(comment);
    }
    Ok(v)
}

/// Run `rbuild inspect`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    use rbuild_runtime::container::format::Template;
    // A bad template is an error before anything is looked up.
    let template = if args.format == "json" { None } else { Some(Template::parse(&args.format)?) };
    let containers = rbuild_runtime::container::Containers::open(&g.root);
    let mut store = None;
    let mut views = Vec::new();
    let mut missing = Vec::new();
    for name in &args.images {
        if args.kind.as_deref() != Some("image") && args.raw.is_none() {
            match containers.resolve(name) {
                Ok(c) => {
                    views.push(describe_container(g, &c, args.size)?);
                    continue;
                }
                Err(rbuild_runtime::Error::NoSuchContainer(_)) if args.kind.is_none() => {}
                Err(rbuild_runtime::Error::NoSuchContainer(_)) => {
                    missing.push(format!("No such container: {name}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if store.is_none() {
            store = Some(g.store()?);
        }
        let store = store.as_ref().expect("opened above");
        let img = match store.resolve(name) {
            Ok(i) => i,
            Err(e) if args.kind.is_none() && args.raw.is_none() => {
                missing.push(format!("No such object: {name} ({e})"));
                continue;
            }
            Err(e) => {
                missing.push(e.to_string());
                continue;
            }
        };
        match args.raw.as_deref() {
            Some("manifest") => {
                use std::io::Write;
                std::io::stdout().write_all(img.manifest.bytes())?;
                continue;
            }
            Some(_) => {
                use std::io::Write;
                std::io::stdout().write_all(&store.read_blob(&img.config_digest)?)?;
                continue;
            }
            None => {}
        }
        views.push(describe(store, &img)?);
    }
    if args.raw.is_none() {
        match &template {
            None => println!("{}", serde_json::to_string_pretty(&views)?),
            Some(t) => {
                for v in &views {
                    println!("{}", t.render(v)?);
                }
            }
        }
    }
    // docker prints what it found, then fails naming what it did not.
    match missing.len() {
        0 => Ok(0),
        1 if views.is_empty() => Err(anyhow::anyhow!("{}", missing[0])),
        _ => {
            for m in &missing {
                eprintln!("error: {m}");
            }
            Ok(1)
        }
    }
}

//! `rbuild inspect`: an image's config, manifest and store details, like `docker inspect`.

use serde_json::{Value, json};

/// Flags of `rbuild inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output: `json` (default), or a template of `{{.Field}}` / `{{.A.B}}` paths.
    #[arg(short = 'f', long, default_value = "json")]
    pub format: String,
    /// Print the raw bytes of the `manifest` or the `config` instead.
    #[arg(long, value_parser = ["manifest", "config"])]
    pub raw: Option<String>,
    /// Images: name[:tag], name@digest, digest or ID prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
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

/// Expand `{{.A.B}}` paths in `template` against `v`; strings print bare, the rest as JSON.
fn render(template: &str, v: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").ok_or_else(|| anyhow::anyhow!("format {template:?}: unclosed {{{{"))?;
        let expr = rest[start + 2..start + end].trim();
        let path = expr
            .strip_prefix('.')
            .ok_or_else(|| anyhow::anyhow!("format {template:?}: {expr:?} is not a .Field path"))?;
        let mut cur = v;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            cur = cur.get(key).ok_or_else(|| anyhow::anyhow!("format {template:?}: no field {key:?}"))?;
        }
        match cur {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Run `rbuild inspect`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    let mut views = Vec::new();
    for name in &args.images {
        let img = store.resolve(name)?;
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
        views.push(describe(&store, &img)?);
    }
    if args.raw.is_some() {
        return Ok(0);
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        for v in &views {
            println!("{}", render(&args.format, v)?);
        }
    }
    Ok(0)
}

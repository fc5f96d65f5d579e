//! ADD's extras: local archives extracted, URLs downloaded (with `--checksum`), git
//! repositories cloned (`git clone --depth 1`, when git is installed).

use super::copy::Tree;
use super::error::{BuildError, BuildResult};
use super::solver::{Builder, is_git, is_url};
use rbuild_frontend::graph::CopyOp;
use std::path::{Path, PathBuf};

fn tree_of(dir: &Path) -> BuildResult<Tree> {
    let mut t = Tree::new();
    t.insert(String::new(), dir.to_path_buf());
    for e in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let e = e.map_err(|e| BuildError::Invalid(format!("walking {}: {e}", dir.display())))?;
        let rel = e.path().strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
        t.insert(rel, e.into_path());
    }
    Ok(t)
}

/// Extract a local archive into a directory of the build; its tree and the root as the one
/// selected source (a directory: its contents are copied).
pub fn extract_archive(b: &Builder, archive: &Path) -> BuildResult<(Tree, Vec<super::copy::Selected>)> {
    let dir = b.tmp.path().join(format!("add-{}", crate::snapshot::unique()));
    std::fs::create_dir_all(&dir).map_err(BuildError::io(&dir))?;
    let f = std::fs::File::open(archive).map_err(BuildError::io(archive))?;
    rbuild_image::layer::apply_layer(f, &dir, &Default::default())
        .map_err(|e| BuildError::Invalid(format!("extracting {}: {e}", archive.display())))?;
    let t = tree_of(&dir)?;
    let under: Vec<String> = t.keys().filter(|k| !k.is_empty()).cloned().collect();
    Ok((t, vec![super::copy::Selected { rel: String::new(), is_dir: true, under }]))
}

/// Download or clone every source of an ADD into one directory; the tree and the names
/// to select in it.
pub fn fetch_remote(b: &Builder, c: &CopyOp, n: u32) -> BuildResult<(Tree, Vec<String>)> {
    let dir = b.tmp.path().join(format!("remote-{}", crate::snapshot::unique()));
    std::fs::create_dir_all(&dir).map_err(BuildError::io(&dir))?;
    let mut names = Vec::new();
    for (i, src) in c.sources.iter().enumerate() {
        if is_git(src) {
            let name = format!("git-{i}");
            clone_git(src, &dir.join(&name), c.keep_git_dir)?;
            names.push(name);
        } else if is_url(src) {
            let base = url_file_name(src);
            let name = if c.dest_is_dir || c.dest.ends_with('/') {
                base
            } else {
                c.dest.rsplit('/').next().unwrap_or("download").to_string()
            };
            let sub = dir.join(format!("u{i}"));
            std::fs::create_dir_all(&sub).map_err(BuildError::io(&sub))?;
            download(b, src, &sub.join(&name), c.checksum.as_deref(), n)?;
            names.push(format!("u{i}/{name}"));
        } else {
            return Err(BuildError::Invalid(format!(
                "ADD {src:?}: local sources cannot be mixed with URLs in one ADD"
            )));
        }
    }
    Ok((tree_of(&dir)?, names))
}

fn url_file_name(u: &str) -> String {
    let path = u.split(['?', '#']).next().unwrap_or(u);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last.is_empty() || last.contains(':') { "__unnamed__".into() } else { last.to_string() }
}

fn download(b: &Builder, url: &str, to: &PathBuf, checksum: Option<&str>, n: u32) -> BuildResult<()> {
    use sha2::Digest as _;
    b.progress.note(n, &format!("downloading {url}"));
    let remote = b.resolver.remote();
    let to2 = to.clone();
    let url2 = url.to_string();
    let (hash, mtime) = remote.block_on(async move {
        let resp = reqwest::get(&url2).await.map_err(|e| BuildError::Invalid(format!("ADD {url2}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(BuildError::Invalid(format!("ADD {url2}: the server answered {status}")));
        }
        let mtime = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
            .map(|t| t.timestamp());
        let mut f = std::fs::File::create(&to2).map_err(BuildError::io(&to2))?;
        let mut h = sha2::Sha256::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| BuildError::Invalid(format!("ADD {url2}: {e}")))? {
            h.update(&chunk);
            std::io::Write::write_all(&mut f, &chunk).map_err(BuildError::io(&to2))?;
        }
        Ok::<_, BuildError>((hex::encode(h.finalize()), mtime))
    })?;
    if let Some(sum) = checksum {
        let want = sum.strip_prefix("sha256:").unwrap_or(sum);
        if want != hash {
            return Err(BuildError::Invalid(format!(
                "ADD {url}: checksum mismatch: expected sha256:{want}, got sha256:{hash}"
            )));
        }
    }
    if let Some(t) = mtime {
        let f = std::fs::File::options().write(true).open(to).map_err(BuildError::io(to))?;
        let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64));
    }
    Ok(())
}

fn clone_git(src: &str, to: &Path, keep_git_dir: bool) -> BuildResult<()> {
    let (url, reference) = match src.split_once('#') {
        Some((u, r)) => (u, Some(r.split(':').next().unwrap_or(r))),
        None => (src, None),
    };
    let mut cmd = std::process::Command::new("git");
    cmd.args(["clone", "--depth", "1", "--quiet"]);
    if let Some(r) = reference.filter(|r| !r.is_empty()) {
        cmd.args(["--branch", r]);
    }
    cmd.arg(url).arg(to);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::Invalid(format!(
                "ADD {src}: git is not installed, so git repositories cannot be added"
            )));
        }
        Err(e) => return Err(BuildError::Invalid(format!("ADD {src}: running git: {e}"))),
    };
    if !out.status.success() {
        return Err(BuildError::Invalid(format!(
            "ADD {src}: git clone failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if !keep_git_dir {
        let g = to.join(".git");
        std::fs::remove_dir_all(&g).map_err(BuildError::io(&g))?;
    }
    Ok(())
}

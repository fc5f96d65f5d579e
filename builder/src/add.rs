//! ADD's extras: local archives extracted, URLs downloaded (with `--checksum`), git
//! repositories fetched (the one commit, when git is installed; `URL#ref:subdir`).

use crate::copy::{Selected, Tree, tree_of_root};
use crate::solver::{Builder, is_git, is_url};
use crate::{Error, Result};
use rbuild_frontend::graph::CopyOp;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Extract a local archive into a directory of the build; its tree and the root as the one
/// selected source (a directory: its contents are copied).
pub fn extract_archive(b: &Builder, archive: &Path) -> Result<(Tree, Vec<Selected>)> {
    let dir = b.tmp.path().join(format!("add-{}", rbuild_runtime::snapshot::unique()));
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let f = crate::cancel::Checked::new(std::fs::File::open(archive).map_err(Error::io(archive))?, &b.cancel);
    // Docker and BuildKit skip a file entry with an empty name; a layer may not have one.
    let opts = rbuild_image::layer::ApplyOptions { lenient_root: true, ..Default::default() };
    rbuild_image::layer::apply_layer(f, &dir, &opts)
        .map_err(|e| b.cancelled_or(Error::Invalid(format!("extracting {}: {e}", archive.display()))))?;
    let t = tree_of_root(&dir)?;
    let sel = Selected::root_of(&t);
    Ok((t, vec![sel]))
}

/// Download or clone every source of an ADD into one directory; the tree and the names
/// to select in it.
pub fn fetch_remote(b: &Builder, c: &CopyOp, n: u32) -> Result<(Tree, Vec<String>)> {
    let dir = b.tmp.path().join(format!("remote-{}", rbuild_runtime::snapshot::unique()));
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let mut names = Vec::new();
    for (i, src) in c.sources.iter().enumerate() {
        if is_git(src) {
            let name = format!("git-{i}");
            let g = GitSource::parse(src)?;
            b.progress.note(n, &format!("fetching {} {}", g.url, g.reference.as_deref().unwrap_or("HEAD")));
            let checksum = g.checksum.as_deref().or(c.checksum.as_deref());
            let commit = clone_git(&g, &dir.join(&name), c.keep_git_dir || g.keep_git_dir, checksum, &b.cancel)?;
            b.progress.note(n, &format!("checked out {commit}"));
            names.push(match &g.subdir {
                Some(sub) => {
                    let p = dir.join(&name).join(sub);
                    if !p.is_dir() {
                        return Err(Error::Invalid(format!("ADD {src}: {sub} is not a directory of the repository")));
                    }
                    format!("{name}/{sub}")
                }
                None => name,
            });
        } else if is_url(src) {
            // Named after the URL, as BuildKit does: into a directory destination (or one
            // that exists as a directory) it keeps that name; to a file path the COPY rules
            // rename it.
            let name = url_file_name(src);
            let sub = dir.join(format!("u{i}"));
            std::fs::create_dir_all(&sub).map_err(Error::io(&sub))?;
            download(b, src, &sub.join(&name), c.checksum.as_deref(), n)?;
            names.push(format!("u{i}/{name}"));
        } else {
            return Err(Error::Invalid(format!("ADD {src:?}: local sources cannot be mixed with URLs in one ADD")));
        }
    }
    Ok((tree_of_root(&dir)?, names))
}

/// A git source of ADD, BuildKit's syntax: `URL#ref:subdir` (both parts optional), or
/// (Dockerfile 1.18) `URL?branch=B&subdir=D`, with `ref`, `tag`, `branch`, `checksum`
/// (alias `commit`), `subdir`, `keep-git-dir` and `submodules` as query keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitSource {
    /// What git fetches from.
    pub url: String,
    /// A branch, tag, ref or commit (`None`: the remote's HEAD).
    pub reference: Option<String>,
    /// A directory of the repository to add instead of its root.
    pub subdir: Option<String>,
    /// The commit the reference must point at (`?checksum=`/`?commit=`).
    pub checksum: Option<String>,
    /// `?keep-git-dir=true`.
    pub keep_git_dir: bool,
    /// `?submodules=false`: BuildKit fetches submodules unless told not to.
    pub skip_submodules: bool,
}

impl GitSource {
    /// Split `URL#ref:subdir` or `URL?key=value&…`.
    pub fn parse(src: &str) -> Result<GitSource> {
        let bad = |why: String| Error::Invalid(format!("ADD {src}: {why}"));
        let (url, frag) = match src.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (src, None),
        };
        let (mut reference, mut subdir) = match frag {
            None => (None, None),
            Some(f) => match f.split_once(':') {
                Some((r, d)) => (Some(r.to_string()), Some(d.to_string())),
                None => (Some(f.to_string()), None),
            },
        };
        let mut g = GitSource { url: url.to_string(), ..Default::default() };
        // Query options: only on scheme URLs (an scp-like path may contain '?').
        if let (Some((base, query)), true) = (url.split_once('?'), url.contains("://")) {
            g.url = base.to_string();
            for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let set = |slot: &mut Option<String>, v: String| {
                    if frag.is_some() {
                        return Err(bad(format!("{k}= cannot be combined with a #fragment")));
                    }
                    *slot = Some(v);
                    Ok(())
                };
                match k {
                    "ref" => set(&mut reference, v.to_string())?,
                    "branch" => set(&mut reference, format!("refs/heads/{v}"))?,
                    "tag" => set(&mut reference, format!("refs/tags/{v}"))?,
                    "subdir" => set(&mut subdir, v.to_string())?,
                    "checksum" | "commit" => g.checksum = Some(v.to_ascii_lowercase()),
                    "keep-git-dir" => g.keep_git_dir = matches!(v, "" | "true" | "1"),
                    "submodules" => g.skip_submodules = matches!(v, "false" | "0"),
                    _ => {
                        return Err(bad(format!(
                            "unknown git option {k:?} (use ref, tag, branch, checksum, commit, subdir, keep-git-dir, submodules)"
                        )));
                    }
                }
            }
            // A commit alone is the reference.
            if reference.is_none() {
                reference = g.checksum.clone();
            }
        }
        g.reference = reference.filter(|r| !r.is_empty());
        // git reads an argument that starts with `-` as an option (`--upload-pack=…` runs a
        // command): neither a reference nor a repository may look like one.
        for (what, v) in [("reference", g.reference.as_deref()), ("checksum", g.checksum.as_deref())] {
            if let Some(v) = v.filter(|v| v.starts_with('-')) {
                return Err(bad(format!("the {what} {v:?} starts with \"-\": not a valid git {what}")));
            }
        }
        if g.url.starts_with('-') {
            return Err(bad(format!("the repository {:?} starts with \"-\"", g.url)));
        }
        g.subdir = match subdir.as_deref().map(|d| d.trim_matches('/')) {
            None | Some("") | Some(".") => None,
            Some(d) => {
                if d.split('/').any(|c| c == "..") {
                    return Err(bad(format!("the subdirectory {d:?} leaves the repository")));
                }
                Some(d.to_string())
            }
        };
        Ok(g)
    }
}

fn is_full_sha(r: &str) -> bool {
    (r.len() == 40 || r.len() == 64) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sha_prefix(r: &str) -> bool {
    r.len() >= 7 && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Run git; its stdout, or an error naming the source and git's own message. Polls
/// `cancel` (Ctrl-C) and kills git when it is set.
fn git(args: &[&str], dir: Option<&Path>, src: &str, cancel: &AtomicBool) -> Result<String> {
    use std::io::{Read, Seek};
    let spawn_err = |e: std::io::Error| Error::Invalid(format!("ADD {src}: running git: {e}"));
    // Files, not pipes: ls-remote of a big repository writes more than a pipe holds.
    let mut out = tempfile::tempfile().map_err(spawn_err)?;
    let mut err = tempfile::tempfile().map_err(spawn_err)?;
    let mut cmd = std::process::Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().map_err(spawn_err)?)
        .stderr(err.try_clone().map_err(spawn_err)?);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "ADD {src}: git is not installed, so git repositories cannot be added"
            )));
        }
        Err(e) => return Err(spawn_err(e)),
    };
    let status = loop {
        if let Some(st) = child.try_wait().map_err(spawn_err)? {
            break st;
        }
        if cancel.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Cancelled);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut v = Vec::new();
        let _ = f.rewind().and_then(|_| f.read_to_end(&mut v));
        String::from_utf8_lossy(&v).into_owned()
    };
    if !status.success() {
        return Err(Error::Invalid(format!(
            "ADD {src}: git {} failed: {}",
            args.first().copied().unwrap_or(""),
            read(&mut err).trim()
        )));
    }
    Ok(read(&mut out))
}

/// The commit an ADD of a git source would check out (`git ls-remote`), for its cache
/// key: a new commit on the branch re-runs the step, the same commit is a cache hit.
/// `None` when the reference cannot be resolved without fetching (an abbreviated commit).
pub fn git_commit(src: &str, cancel: &AtomicBool) -> Result<Option<String>> {
    let g = GitSource::parse(src)?;
    let r = g.reference.as_deref().unwrap_or("HEAD");
    if is_full_sha(r) {
        return Ok(Some(r.to_ascii_lowercase()));
    }
    let out = git(&["ls-remote", "--", &g.url, r], None, src, cancel)?;
    let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
    for want in [
        format!("refs/heads/{r}"),
        format!("refs/tags/{r}^{{}}"),
        format!("refs/tags/{r}"),
        format!("{r}^{{}}"),
        r.to_string(),
        format!("refs/{r}"),
    ] {
        if let Some((sha, _)) = refs.iter().find(|(_, name)| *name == want) {
            return Ok(Some(sha.to_string()));
        }
    }
    if is_sha_prefix(r) {
        return Ok(None);
    }
    Err(Error::Invalid(format!("ADD {src}: the repository has no branch, tag or ref named {r:?}")))
}

/// Fetch `g` (only the one commit when the server allows) into `to` and check it out;
/// the commit. `checksum` (ADD --checksum) must be a prefix of the commit.
fn clone_git(
    g: &GitSource,
    to: &Path,
    keep_git_dir: bool,
    checksum: Option<&str>,
    cancel: &AtomicBool,
) -> Result<String> {
    let src = &g.url;
    std::fs::create_dir_all(to).map_err(Error::io(to))?;
    git(&["-c", "init.defaultBranch=main", "init", "-q"], Some(to), src, cancel)?;
    git(&["remote", "add", "--", "origin", &g.url], Some(to), src, cancel)?;
    let want = g.reference.as_deref().unwrap_or("HEAD");
    let target = match git(&["fetch", "-q", "--depth", "1", "--no-tags", "--", "origin", want], Some(to), src, cancel) {
        Ok(_) => "FETCH_HEAD".to_string(),
        // Servers that refuse a commit nobody named: fetch everything, then pick it.
        Err(_) if is_sha_prefix(want) => {
            git(&["fetch", "-q", "--tags", "--", "origin"], Some(to), src, cancel)?;
            want.to_string()
        }
        Err(e) => return Err(e),
    };
    git(&["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", &target, "--"], Some(to), src, cancel)?;
    let commit = git(&["rev-parse", "HEAD"], Some(to), src, cancel)?.trim().to_string();
    if let Some(sum) = checksum {
        if !commit.starts_with(&sum.to_ascii_lowercase()) {
            return Err(Error::Invalid(format!("ADD {src}: checksum mismatch: expected commit {sum}, got {commit}")));
        }
    }
    // The commit pins every submodule's commit, so the cache key stays the commit.
    if !g.skip_submodules && to.join(".gitmodules").exists() {
        let update = ["submodule", "update", "--init", "--recursive", "--depth", "1"];
        if git(&update, Some(to), src, cancel).is_err() {
            // A server that will not serve a pinned commit that is no branch tip in a
            // shallow fetch: fetch the submodules whole.
            git(&update[..4], Some(to), src, cancel)?;
        }
    }
    if !keep_git_dir {
        remove_git_dirs(to)?;
    }
    Ok(commit)
}

/// Remove `.git` (the repository's directory and the submodules' `.git` files) under
/// `dir`; git never tracks a path named `.git`, so nothing of the checkout goes.
fn remove_git_dirs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(Error::io(&path))?;
        if entry.file_name() == ".git" {
            if ty.is_dir() {
                std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
            } else {
                std::fs::remove_file(&path).map_err(Error::io(&path))?;
            }
        } else if ty.is_dir() {
            remove_git_dirs(&path)?;
        }
    }
    Ok(())
}

/// The file name of a download: the last component of the URL's path (Go's `path.Base`),
/// `__unnamed__` when the path has none.
fn url_file_name(u: &str) -> String {
    let no_query = u.split(['?', '#']).next().unwrap_or(u);
    let after_scheme = no_query.split_once("://").map(|(_, r)| r).unwrap_or(no_query);
    let path = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." { "__unnamed__".into() } else { last.to_string() }
}

fn download(b: &Builder, url: &str, to: &PathBuf, checksum: Option<&str>, n: u32) -> Result<()> {
    use sha2::Digest as _;
    b.progress.note(n, &format!("downloading {url}"));
    let remote = b.resolver.remote();
    let to2 = to.clone();
    let url2 = url.to_string();
    let (hash, mtime) = remote.block_on(async move {
        let resp = reqwest::get(&url2).await.map_err(|e| Error::Invalid(format!("ADD {url2}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::Invalid(format!("ADD {url2}: the server answered {status}")));
        }
        let mtime = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
            .map(|t| t.timestamp());
        let mut f = std::fs::File::create(&to2).map_err(Error::io(&to2))?;
        let mut h = sha2::Sha256::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Invalid(format!("ADD {url2}: {e}")))? {
            h.update(&chunk);
            std::io::Write::write_all(&mut f, &chunk).map_err(Error::io(&to2))?;
        }
        Ok::<_, Error>((hex::encode(h.finalize()), mtime))
    })??;
    if let Some(sum) = checksum {
        let want = sum.strip_prefix("sha256:").unwrap_or(sum);
        if want != hash {
            return Err(Error::Invalid(format!(
                "ADD {url}: checksum mismatch: expected sha256:{want}, got sha256:{hash}"
            )));
        }
    }
    if let Some(t) = mtime {
        let f = std::fs::File::options().write(true).open(to).map_err(Error::io(to))?;
        let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::is_git;

    #[test]
    fn git_sources_are_detected_like_buildkit() {
        for s in [
            "git://127.0.0.1:9418/repo.git#main",
            "git://host/repo",
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.10.1:docs",
            "http://host/r.git?x=1",
            "git@github.com:moby/buildkit.git",
            "git@github.com:moby/buildkit#main",
            "ssh://git@host/repo",
        ] {
            assert!(is_git(s), "{s}");
        }
        for s in ["https://example.com/file.tar.gz", "https://host/repo", "repo.git", "./x.git", "dir/sub.git#frag"] {
            assert!(!is_git(s), "{s}");
        }
        let g = GitSource::parse("git://h/r.git#v1:sub/dir/").unwrap();
        assert_eq!(
            g,
            GitSource {
                url: "git://h/r.git".into(),
                reference: Some("v1".into()),
                subdir: Some("sub/dir".into()),
                ..Default::default()
            }
        );
        let g = GitSource::parse("git@h:r.git").unwrap();
        assert_eq!((g.url.as_str(), g.reference, g.subdir), ("git@h:r.git", None, None));
        // Dockerfile 1.18 query options.
        let g = GitSource::parse("https://h/r.git?tag=v1&subdir=docs&keep-git-dir=true").unwrap();
        assert_eq!(
            g,
            GitSource {
                url: "https://h/r.git".into(),
                reference: Some("refs/tags/v1".into()),
                subdir: Some("docs".into()),
                checksum: None,
                keep_git_dir: true,
                skip_submodules: false,
            }
        );
        assert!(GitSource::parse("https://h/r.git?submodules=false").unwrap().skip_submodules);
        let g = GitSource::parse("git://h/r.git?commit=ABCDEF1").unwrap();
        assert_eq!((g.reference.as_deref(), g.checksum.as_deref()), (Some("abcdef1"), Some("abcdef1")));
        let g = GitSource::parse("git://h/r.git?branch=dev&checksum=abcdef1").unwrap();
        assert_eq!(g.reference.as_deref(), Some("refs/heads/dev"));
        assert!(GitSource::parse("git://h/r.git?depth=1").unwrap_err().to_string().contains("\"depth\""));
        assert!(GitSource::parse("git://h/r.git?branch=a#b").is_err());
        assert!(GitSource::parse("git://h/r.git#main:../etc").is_err());
        // Nothing git could read as an option.
        for bad in ["git://h/r.git#--upload-pack=touch${IFS}/tmp/x", "git://h/r.git?ref=-c", "git://h/r.git?commit=-x"]
        {
            let e = GitSource::parse(bad).unwrap_err().to_string();
            assert!(e.contains("starts with \"-\""), "{bad}: {e}");
        }
    }
}

//! Fidelity cases of `RUN --mount`, `.dockerignore` and WORKDIR, as data: each
//! `testdata/fidelity/<case>/` (cases named `mnt-*` and `ign-*` here) holds a
//! `Dockerfile`, a `context/` directory (none when empty), optional `chmod` lines (`MODE PATH`, applied to
//! the context copy: git keeps no directory modes), and `expected` lines checked against
//! the image's root filesystem exported with `-o type=local`:
//!
//! ```text
//! /path d|f|l [MODE [UID:GID]]   exists, of that kind (and mode, owner)
//! !/path                          does not exist
//! ```
//!
//! and optional `contents` lines (`/path text`: the file holds that text, trimmed).
//! Also: a sparse file in an ADDed tar stays sparse.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod common;

use common::{Env, copy_dir};

fn fidelity() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fidelity")
}
/// Build one case; the mismatches found (empty: the case passes).
fn run_case(name: &str) -> Vec<String> {
    let case = fidelity().join(name);
    let e = Env::new();
    let ctx = e.path("context");
    // git keeps no empty directory: a case without files in its context has none.
    if case.join("context").is_dir() {
        copy_dir(&case.join("context"), &ctx);
    } else {
        std::fs::create_dir_all(&ctx).unwrap();
    }
    if let Ok(lines) = std::fs::read_to_string(case.join("chmod")) {
        for l in lines.lines().filter(|l| !l.trim().is_empty()) {
            let (mode, p) = l.split_once(' ').unwrap();
            let mode = u32::from_str_radix(mode, 8).unwrap();
            std::fs::set_permissions(ctx.join(p.trim()), std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let out = e.path("out");
    let df = case.join("Dockerfile");
    let (ok, err) = e.try_build(&[
        "-f",
        df.to_str().unwrap(),
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    if !ok {
        return vec![format!("the build failed:\n{err}")];
    }
    let mut bad = Vec::new();
    let expected = std::fs::read_to_string(case.join("expected")).unwrap();
    for l in expected.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(p) = l.strip_prefix('!') {
            if std::fs::symlink_metadata(out.join(p.trim_start_matches('/'))).is_ok() {
                bad.push(format!("{p} exists"));
            }
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        let p = out.join(f[0].trim_start_matches('/'));
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            bad.push(format!("{} is missing", f[0]));
            continue;
        };
        let kind = if m.is_dir() {
            "d"
        } else if m.file_type().is_symlink() {
            "l"
        } else {
            "f"
        };
        if f.get(1).is_some_and(|k| *k != kind) {
            bad.push(format!("{}: kind {kind}, want {}", f[0], f[1]));
        }
        if let Some(mode) = f.get(2) {
            let got = format!("{:o}", m.mode() & 0o7777);
            if got != *mode {
                bad.push(format!("{}: mode {got}, want {mode}", f[0]));
            }
        }
        if let Some(owner) = f.get(3) {
            let got = format!("{}:{}", m.uid(), m.gid());
            if got != *owner {
                bad.push(format!("{}: owner {got}, want {owner}", f[0]));
            }
        }
    }
    if let Ok(c) = std::fs::read_to_string(case.join("contents")) {
        for l in c.lines().filter(|l| !l.trim().is_empty()) {
            let (p, want) = l.split_once(' ').unwrap();
            let got = std::fs::read_to_string(out.join(p.trim_start_matches('/'))).unwrap_or_default();
            if got.trim() != want.trim() {
                bad.push(format!("{p}: holds {got:?}, want {want:?}"));
            }
        }
    }
    bad
}

fn check(name: &str) {
    let bad = run_case(name);
    assert!(bad.is_empty(), "case {name}:\n{}", bad.join("\n"));
}

#[test]
fn every_case_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(fidelity())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mnt-") || n.starts_with("ign-"))
        .collect();
    names.sort();
    let listed = [
        "ign-exception-in-excluded-dir",
        "ign-no-descend-without-prefix",
        "ign-reincluded-parents-keep-mode",
        "mnt-cache-uid-is-another-cache",
        "mnt-stage-rw-writes-are-thrown-away",
        "mnt-workdir-parents-owned-by-user",
    ];
    assert_eq!(names, listed, "add a #[test] for each new case");
}

#[test]
fn ign_exception_in_excluded_dir() {
    check("ign-exception-in-excluded-dir");
}

#[test]
fn ign_no_descend_without_prefix() {
    check("ign-no-descend-without-prefix");
}

#[test]
fn ign_reincluded_parents_keep_mode() {
    check("ign-reincluded-parents-keep-mode");
}

#[test]
fn mnt_cache_uid_is_another_cache() {
    check("mnt-cache-uid-is-another-cache");
}

#[test]
fn mnt_stage_rw_writes_are_thrown_away() {
    check("mnt-stage-rw-writes-are-thrown-away");
}

#[test]
fn mnt_workdir_parents_owned_by_user() {
    check("mnt-workdir-parents-owned-by-user");
}

/// A GNU sparse tar entry (4 GiB apparent, a few bytes of data) ADDed: the file in the
/// image's tree, in the exported tree and in the snapshot a RUN sees is 4 GiB long and
/// takes a few blocks.
#[test]
fn add_of_a_sparse_file_keeps_its_holes() {
    let e = Env::new();
    let ctx = e.path("context");
    std::fs::create_dir_all(&ctx).unwrap();
    let src = e.path("sparse-src");
    std::fs::create_dir_all(&src).unwrap();
    let big = src.join("big.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&big).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"middle", 2 << 30).unwrap();
        f.set_len(4 << 30).unwrap();
    }
    let st = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(ctx.join("sparse.tar"))
        .arg("big.img")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(&src).unwrap();
    assert!(std::fs::metadata(ctx.join("sparse.tar")).unwrap().len() < 1 << 20, "GNU tar wrote a sparse entry");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nADD sparse.tar /data/\nRUN stat -c '%s %b' /data/big.img > /stat && head -c 4 /data/big.img > /head\n",
    )
    .unwrap();
    let out = e.path("out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    let m = std::fs::metadata(out.join("data/big.img")).unwrap();
    assert_eq!(m.len(), 4 << 30);
    assert!(m.blocks() < 256, "exported file takes {} blocks", m.blocks());
    assert_eq!(std::fs::read(out.join("head")).unwrap(), b"head");
    // What the RUN saw: the snapshot's file, through the overlay.
    let stat = std::fs::read_to_string(out.join("stat")).unwrap();
    let (size, blocks) = stat.trim().split_once(' ').unwrap();
    assert_eq!(size, (4u64 << 30).to_string());
    assert!(blocks.parse::<u64>().unwrap() < 256, "the RUN's file takes {blocks} blocks");
    // The store's uncompressed layer blob spells the zeros out, and keeps them as holes.
    for b in common::files_under(&e.root().join("blobs")) {
        let m = std::fs::metadata(&b).unwrap();
        assert!(m.blocks() < 64 << 11, "{} takes {} blocks for {} bytes", b.display(), m.blocks(), m.len());
    }
    let mut f = std::fs::File::open(out.join("data/big.img")).unwrap();
    use std::io::{Read, Seek};
    f.seek(std::io::SeekFrom::Start(2 << 30)).unwrap();
    let mut b = [0u8; 6];
    f.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"middle");
}

//! import, save and load through the library: round trips, determinism, refusals.

use rbuild_image::store::archive::{ArchiveFormat, load, save};
use rbuild_image::store::import::{ImportOptions, import};
use rbuild_image::{Error, Reference, Store};
use std::io::{Read, Write};

/// A small deterministic rootfs tar.
fn rootfs(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn imported(store: &Store, tar: Vec<u8>, name: &str) -> rbuild_image::store::import::Imported {
    let i = import(store, std::io::Cursor::new(tar), &ImportOptions::default()).unwrap();
    store.tag(&Reference::parse(name).unwrap(), &i.manifest.descriptor()).unwrap();
    i
}

fn blob_names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn import_is_deterministic_and_streams_the_tar_as_given() {
    let tar = rootfs(&[("etc/hello", b"hi\n"), ("bin/x", b"binary")]);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s1, s2) = (Store::open(d1.path()).unwrap(), Store::open(d2.path()).unwrap());
    let a = imported(&s1, tar.clone(), "a");
    let mut zst = Vec::new();
    zstd::stream::copy_encode(&tar[..], &mut zst, 3).unwrap();
    let b = imported(&s2, zst, "a");
    assert_eq!(a.config_digest, b.config_digest);
    assert_eq!(a.manifest.digest(), b.manifest.digest());
    assert_eq!(a.diff_id, rbuild_image::Digest::sha256_of(&tar));
    let img = s1.resolve("a").unwrap();
    assert_eq!(img.config.created.as_deref(), Some("2020-09-13T12:26:40Z"));
    assert_eq!(img.config.history[0].created_by.as_deref(), Some("rbuild import"));
    // The stored layer decompresses to the tar, byte for byte.
    let (_, mut r) = rbuild_image::layer::decompress(s1.open_blob(&a.layer.digest).unwrap()).unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    assert_eq!(back, tar);
    // An explicit time wins.
    let d3 = tempfile::tempdir().unwrap();
    let s3 = Store::open(d3.path()).unwrap();
    let c = import(&s3, std::io::Cursor::new(tar), &ImportOptions { created: Some(0), ..Default::default() }).unwrap();
    assert_ne!(c.config_digest, a.config_digest);
    assert_eq!(c.layer, a.layer);
}

/// A reader that hands out its bytes in irregular pieces, as pipes and decompressors do.
struct Ragged {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl Read for Ragged {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = (self.step * 7 + 13) % 9973 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn layer_digest_does_not_depend_on_read_sizes() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8 & 0x3f).collect();
    let tar = rootfs(&[("big", &big[..]), ("small", b"x")]);
    let mut digests = Vec::new();
    for step in [0, 1, 500] {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let r = Ragged { data: tar.clone(), pos: 0, step };
        digests.push(import(&s, r, &ImportOptions::default()).unwrap().layer.digest);
    }
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    digests.push(import(&s, std::io::Cursor::new(tar), &ImportOptions::default()).unwrap().layer.digest);
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn corrupt_tars_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = rootfs(&[("a", &[7u8; 5000][..]), ("b", b"x")]);
    let mut bad_sum = tar.clone();
    bad_sum[512 + 5120 + 1] ^= 0x20; // the second header's name: its checksum no longer holds
    for (what, bytes) in [
        ("half", tar[..tar.len() / 2].to_vec()),
        ("no end marker", tar[..512 + 5120 + 512 + 512].to_vec()),
        ("bad checksum", bad_sum),
        ("not a tar", b"hello world, this is text and not a tar at all".repeat(20)),
        ("empty", Vec::new()),
    ] {
        let Err(err) = import(&store, std::io::Cursor::new(bytes), &ImportOptions::default()) else {
            panic!("{what}: accepted")
        };
        assert!(matches!(err, Error::CorruptLayer(_)), "{what}: {err}");
        assert!(err.to_string().contains("not a valid tar"), "{what}: {err}");
        assert!(blob_names(&store).is_empty(), "{what}");
        assert!(std::fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(), "{what}");
    }
}

#[test]
fn save_load_round_trip_both_formats() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let a = imported(&src, rootfs(&[("a", b"1")]), "app:v1");
    imported(&src, rootfs(&[("b", b"2")]), "localhost:5000/team/other");
    src.tag(&Reference::parse("app:v2").unwrap(), &a.manifest.descriptor()).unwrap();
    let images: Vec<_> =
        ["app:v1", "app:v2", "localhost:5000/team/other"].iter().map(|n| src.resolve(n).unwrap()).collect();
    for format in [ArchiveFormat::Oci, ArchiveFormat::Docker] {
        let mut tar = Vec::new();
        save(&src, &images, format, &mut tar).unwrap();
        let mut again = Vec::new();
        save(&src, &images, format, &mut again).unwrap();
        assert_eq!(tar, again, "deterministic");

        let dst_dir = tempfile::tempdir().unwrap();
        let dst = Store::open(dst_dir.path()).unwrap();
        let loaded = load(&dst, std::io::Cursor::new(tar.clone())).unwrap();
        let names: Vec<String> = loaded.iter().map(|l| l.reference.as_ref().unwrap().familiar()).collect();
        assert_eq!(names, ["app:v1", "app:v2", "localhost:5000/team/other:latest"], "{format:?}");
        assert_eq!(blob_names(&dst), blob_names(&src));
        assert_eq!(dst.resolve("app:v2").unwrap().manifest.digest(), a.manifest.digest());

        if format == ArchiveFormat::Docker {
            // Without the OCI layout (older docker, other tools): manifest.json alone is
            // enough, and gives the same image back.
            let mut stripped = tar::Builder::new(Vec::new());
            let mut ar = tar::Archive::new(&tar[..]);
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                let p = e.path().unwrap().display().to_string();
                if p == "index.json" || p == "oci-layout" {
                    continue;
                }
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                stripped.append(&h, &data[..]).unwrap();
            }
            let stripped = stripped.into_inner().unwrap();
            let d = tempfile::tempdir().unwrap();
            let s = Store::open(d.path()).unwrap();
            let loaded = load(&s, std::io::Cursor::new(stripped)).unwrap();
            assert_eq!(loaded.len(), 3);
            assert_eq!(s.resolve("app:v1").unwrap().manifest.digest(), a.manifest.digest(), "same manifest rebuilt");
        }
    }
}

#[test]
fn load_refuses_lying_archives() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    imported(&src, rootfs(&[("a", b"some content")]), "app");
    let img = src.resolve("app").unwrap();
    let mut tar = Vec::new();
    save(&src, std::slice::from_ref(&img), ArchiveFormat::Oci, &mut tar).unwrap();
    // Flip a byte inside the layer blob's data: its name no longer matches its content.
    let layer = &img.layers()[0].digest;
    let mut ar = tar::Archive::new(&tar[..]);
    let mut offset = None;
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().ends_with(layer.hex()) {
            offset = Some(e.raw_file_position() as usize);
        }
    }
    let mut bad = tar.clone();
    bad[offset.unwrap() + 20] ^= 0x55;
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let err = load(&dst, std::io::Cursor::new(bad)).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(!dst.has_blob(layer));
    assert!(dst.list_tags().unwrap().is_empty());

    // Not an archive at all.
    let err = load(&dst, std::io::Cursor::new(rootfs(&[("x", b"y")]))).unwrap_err();
    assert!(err.to_string().contains("neither an OCI layout"), "{err}");

    // An archive missing a blob its manifest needs.
    let mut missing = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with(layer.hex()) {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        missing.append(&h, &data[..]).unwrap();
    }
    let err = load(&dst, std::io::Cursor::new(missing.into_inner().unwrap())).unwrap_err();
    assert!(err.to_string().contains("not in the archive"), "{err}");
    assert!(dst.list_tags().unwrap().is_empty());
    let _ = std::io::sink().write(b"");
}

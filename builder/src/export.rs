//! Outputs: the image (config + manifest) into the local store under its tags, pushed
//! through the registry client, an OCI or docker archive, the root filesystem as a
//! directory or a tar. Layers are kept uncompressed in the store while building and
//! compressed when they leave the machine (push, archives) or when `--compression` asks;
//! the compressed blob is kept and reused next time.

use crate::cache::Cache;
use crate::solver::{Builder, LayerRef};
use crate::{Error, Result};
use rbuild_image::layer::LayerBlobWriter;
use rbuild_image::manifest::ImageManifest;
use rbuild_image::store::archive::{ArchiveFormat, save_to_path};
use rbuild_image::{Compression, Descriptor, ImageConfig, RawManifest, Reference, Store, media_type as mt};
use std::path::{Path, PathBuf};

/// What `--output type=…` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The local store (and the registry with `push=true`).
    Image,
    /// An OCI image layout tar (or directory with `tar=false`).
    Oci,
    /// A docker-archive tar (`docker load`).
    Docker,
    /// The root filesystem as a directory.
    Local,
    /// The root filesystem as a tar.
    Tar,
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The exporter.
    pub kind: OutputKind,
    /// `dest=` (a file, a directory, or `-` for stdout).
    pub dest: Option<PathBuf>,
    /// `name=` (image names for image/oci/docker, comma-separated).
    pub names: Vec<String>,
    /// `push=true`.
    pub push: bool,
    /// `tar=false` for `oci`: write a layout directory.
    pub tar: bool,
}

impl OutputSpec {
    /// Parse docker's `--output` syntax: `type=oci,dest=out.tar`, or a bare path (local)
    /// or `-` (tar to stdout).
    pub fn parse(s: &str) -> Result<OutputSpec> {
        if !s.contains('=') {
            return Ok(if s == "-" {
                OutputSpec { kind: OutputKind::Tar, dest: Some("-".into()), names: vec![], push: false, tar: true }
            } else {
                OutputSpec { kind: OutputKind::Local, dest: Some(s.into()), names: vec![], push: false, tar: true }
            });
        }
        let mut kind = None;
        let mut o = OutputSpec { kind: OutputKind::Image, dest: None, names: vec![], push: false, tar: true };
        for f in s.split(',') {
            let (k, v) =
                f.split_once('=').ok_or_else(|| Error::Invalid(format!("--output {s:?}: {f:?} is not key=value")))?;
            match k {
                "type" => {
                    kind = Some(match v {
                        "image" | "registry" => {
                            if v == "registry" {
                                o.push = true;
                            }
                            OutputKind::Image
                        }
                        "oci" => OutputKind::Oci,
                        "docker" => OutputKind::Docker,
                        "local" => OutputKind::Local,
                        "tar" => OutputKind::Tar,
                        _ => {
                            return Err(Error::Invalid(format!(
                                "--output: unknown type {v:?} (image, registry, oci, docker, local, tar)"
                            )));
                        }
                    })
                }
                "dest" => o.dest = Some(v.into()),
                "name" | "names" => o.names.extend(v.split(';').map(String::from)),
                "push" => o.push = v == "true",
                "tar" => o.tar = v != "false",
                // Accepted and ignored, as docker users pass them out of habit.
                "compression" | "compression-level" | "force-compression" | "oci-mediatypes" | "unpack" => {}
                _ => return Err(Error::Invalid(format!("--output: unknown key {k:?}"))),
            }
        }
        o.kind = kind.ok_or_else(|| Error::Invalid(format!("--output {s:?}: type= is required")))?;
        if matches!(o.kind, OutputKind::Local | OutputKind::Oci | OutputKind::Docker | OutputKind::Tar)
            && o.dest.is_none()
        {
            return Err(Error::Invalid(format!("--output {s:?}: dest= is required for this type")));
        }
        Ok(o)
    }
}

/// Compress an uncompressed cached layer (once: the result is remembered).
pub fn compressed_layer(
    store: &Store,
    cache: &Cache,
    l: &LayerRef,
    c: Compression,
    level: Option<i32>,
) -> Result<Descriptor> {
    if c == Compression::None || l.desc.media_type != mt::OCI_LAYER_TAR {
        return Ok(l.desc.clone());
    }
    if let Some(d) = cache.compressed(&l.diff_id, c, level) {
        return Ok(d);
    }
    let mut src = std::io::BufReader::with_capacity(1 << 20, store.open_blob(&l.desc.digest)?);
    let mut w = LayerBlobWriter::new(store.ingest()?, c, level)?;
    std::io::copy(&mut src, &mut w).map_err(|e| Error::Io { path: store.blob_path(&l.desc.digest), source: e })?;
    let (blob, info) = w.finish()?;
    if info.diff_id != l.diff_id {
        return Err(Error::Image(rbuild_image::Error::DigestMismatch {
            expected: l.diff_id.clone(),
            actual: info.diff_id,
        }));
    }
    blob.commit(Some(&info.digest), Some(info.size))?;
    let d = info.descriptor();
    cache.put_compressed(&l.diff_id, c, level, &d)?;
    Ok(d)
}

/// Write config + manifest to the store; the manifest.
pub fn write_image(
    b: &Builder,
    layers: &[LayerRef],
    config: &ImageConfig,
    c: Compression,
    level: Option<i32>,
) -> Result<RawManifest> {
    let mut descs: Vec<Option<Result<Descriptor>>> = (0..layers.len()).map(|_| None).collect();
    // Compress in parallel: one thread per layer that needs it (usually one or two).
    std::thread::scope(|s| {
        let hs: Vec<_> =
            layers.iter().map(|l| s.spawn(move || compressed_layer(&b.store, &b.cache, l, c, level))).collect();
        for (i, h) in hs.into_iter().enumerate() {
            descs[i] = Some(h.join().unwrap_or_else(|_| Err(Error::Invalid("compression thread panicked".into()))));
        }
    });
    let layers: Vec<Descriptor> = descs.into_iter().map(|d| d.expect("set")).collect::<Result<_>>()?;
    let bytes = config.to_canonical_bytes();
    let cd = b.store.put_blob_bytes(&bytes)?;
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, cd, bytes.len() as u64),
        layers,
        subject: None,
        annotations: Default::default(),
    };
    let raw = RawManifest::from_image(&m)?;
    b.store.put_manifest(&raw)?;
    Ok(raw)
}

/// Write an archive of the stored image.
pub fn write_archive(
    b: &Builder,
    raw: &RawManifest,
    names: &[Reference],
    format: ArchiveFormat,
    dest: &Path,
    tar: bool,
) -> Result<()> {
    let img = b.store.load_image(&raw.descriptor(), names.first().cloned())?;
    if !tar {
        // An OCI layout directory: a store of its own, which is an OCI layout.
        let out = Store::open(dest)?;
        for l in img.layers() {
            let f = b.store.open_blob(&l.digest)?;
            out.put_blob_verified(f, &l.digest, Some(l.size))?;
        }
        out.put_blob_bytes(&b.store.read_blob(&img.config_digest)?)?;
        out.put_manifest(raw)?;
        for n in names {
            out.tag_for_peers(n, &raw.descriptor())?;
        }
        return Ok(());
    }
    if dest == Path::new("-") {
        let mut tmp = tempfile::NamedTempFile::new_in(b.tmp.path()).map_err(Error::io(b.tmp.path()))?;
        rbuild_image::store::archive::save(&b.store, &[img], format, tmp.as_file_mut())?;
        let mut f = std::fs::File::open(tmp.path()).map_err(Error::io(tmp.path()))?;
        std::io::copy(&mut f, &mut std::io::stdout().lock()).map_err(Error::io("stdout"))?;
        return Ok(());
    }
    save_to_path(&b.store, &[img], format, dest)?;
    Ok(())
}

/// Extract the image's root filesystem into `dest` (a directory).
pub fn write_rootfs_dir(b: &Builder, layers: &[LayerRef], dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(Error::io(dest))?;
    b.ensure_all_local(layers)?;
    for l in layers {
        rbuild_image::layer::apply_layer(b.store.open_blob(&l.desc.digest)?, dest, &Default::default())?;
    }
    Ok(())
}

/// Write the image's root filesystem as one tar at `dest` (`-`: stdout).
pub fn write_rootfs_tar(b: &Builder, layers: &[LayerRef], dest: &Path) -> Result<()> {
    let dir = b.tmp.path().join("rootfs-out");
    write_rootfs_dir(b, layers, &dir)?;
    let opts = rbuild_image::layer::WriterOptions { source_date_epoch: b.req.source_date_epoch, xattrs: true };
    if dest == Path::new("-") {
        let out = std::io::stdout().lock();
        let _ = rbuild_image::layer::write_dir(&dir, out, &opts)?;
    } else {
        let f = std::fs::File::create(dest).map_err(Error::io(dest))?;
        let f = rbuild_image::layer::write_dir(&dir, std::io::BufWriter::new(f), &opts)?;
        f.into_inner()
            .map_err(|e| Error::Io { path: dest.to_path_buf(), source: e.into_error() })?
            .sync_all()
            .map_err(Error::io(dest))?;
    }
    Ok(())
}

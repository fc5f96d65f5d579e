//! `import`: a root filesystem tarball becomes a one-layer image, streamed in one pass
//! (decompress -> validate the tar -> gzip + digest + diffID -> ingest).

use super::{BlobWriter, Store};
use crate::config::{History, ImageConfig};
use crate::descriptor::{Descriptor, Platform};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::LayerBlobWriter;
use crate::manifest::{ImageManifest, RawManifest};
use crate::media_type::{self as mt, Compression};
use std::io::{self, Read, Write};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile-like changes applied to the config (`CMD ["sh"]`, `ENV A=1`…).
    pub changes: Vec<String>,
    /// The history entry's comment.
    pub message: Option<String>,
    /// The config's platform (default: this host's).
    pub platform: Option<Platform>,
    /// The config's `created` in seconds since the epoch (default: `SOURCE_DATE_EPOCH`,
    /// else the newest mtime in the tar), so the same tar gives the same image.
    pub created: Option<i64>,
}

/// What an import stored.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The manifest, stored (not tagged).
    pub manifest: RawManifest,
    /// The config digest: the image ID.
    pub config_digest: Digest,
    /// The layer's digest (gzip blob).
    pub layer: Descriptor,
    /// The layer's diffID.
    pub diff_id: Digest,
}

/// Copies what is read through it into a writer (the layer blob), so the tar parser and
/// the compressor see the same single pass over the input.
struct Tee<R, W> {
    inner: R,
    out: W,
    count: u64,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Hands bytes on in fixed-size chunks whatever sizes they arrive in. The gzip encoder's
/// output depends on how its input is split into writes (measured: six chunkings of the same
/// bytes gave six different blobs), and reads from a pipe or a decompressor come in sizes
/// that vary from run to run; fixed chunks make the layer digest a function of the bytes.
struct FixedChunks<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl<W: Write> FixedChunks<W> {
    fn new(inner: W) -> Self {
        FixedChunks { inner, buf: Vec::with_capacity(CHUNK) }
    }

    /// Write what is left (the one short chunk) and return the inner writer.
    fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for FixedChunks<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.inner.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing the encoder mid-stream would change its output: only `finish` writes the tail.
        Ok(())
    }
}

fn bad_tar(reason: impl std::fmt::Display) -> Error {
    Error::CorruptLayer(format!("the rootfs is not a valid tar archive: {reason}"))
}

/// Import the rootfs tar read from `input` (plain, gzip or zstd). Stores the layer, the
/// config and the manifest; the caller tags it. A corrupt or truncated tar is refused and
/// nothing of it is stored.
pub fn import(store: &Store, input: impl Read + Send + 'static, opts: &ImportOptions) -> Result<Imported> {
    let mut config = ImageConfig::for_host();
    if let Some(p) = &opts.platform {
        config.architecture = p.architecture.clone();
        config.os = p.os.clone();
        config.variant = p.variant.clone();
    }
    for c in &opts.changes {
        apply_change(&mut config, c)?;
    }

    let (_, decompressed) = crate::layer::decompress(input).map_err(bad_tar)?;
    let blob = store.ingest()?;
    let layer = LayerBlobWriter::new(blob, Compression::Gzip, None)?;
    let tee = Tee { inner: decompressed, out: FixedChunks::new(layer), count: 0 };
    let mut ar = tar::Archive::new(tee);
    let mut newest: i64 = 0;
    let mut entries = 0u64;
    let mut last_end = 0u64;
    for entry in ar.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let h = entry.header();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = h.size().map_err(|e| bad_tar(format!("{name}: {e}")))?;
        if let Ok(m) = h.mtime() {
            newest = newest.max(m as i64);
        }
        let start = entry.raw_file_position();
        // Read the data, not skip it: a tar cut short shows here, as fewer bytes than the
        // header promised.
        let got = io::copy(&mut entry, &mut io::sink()).map_err(|e| bad_tar(format!("{name}: {e}")))?;
        if got != size && entry.header().entry_type().is_file() {
            return Err(bad_tar(format!("{name}: truncated ({got} of {size} bytes)")));
        }
        last_end = start + size.div_ceil(512) * 512;
        entries += 1;
    }
    let mut tee = ar.into_inner();
    // A whole tar ends with zero blocks; one that stops right after an entry was cut short.
    if entries == 0 {
        return Err(bad_tar("no entries"));
    }
    if tee.count < last_end + 512 {
        return Err(bad_tar("it ends without the end-of-archive marker (truncated?)"));
    }
    // The rest (end-of-archive blocks and padding) belongs to the layer too: the diffID is
    // the digest of the tar exactly as given.
    io::copy(&mut tee, &mut io::sink()).map_err(bad_tar)?;
    let (blob, info): (BlobWriter, _) = tee.out.finish()?.finish()?;
    let (layer_digest, layer_size) = blob.commit(Some(&info.digest), Some(info.size))?;

    let created = opts
        .created
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok()))
        .unwrap_or(newest);
    let created = chrono::DateTime::from_timestamp(created, 0)
        .ok_or_else(|| Error::InvalidJson {
            what: "image config",
            reason: format!("creation time {created} is out of range"),
        })?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    config.created = Some(created.clone());
    config.rootfs.diff_ids = vec![info.diff_id.clone()];
    config.history = vec![History {
        created: Some(created),
        created_by: Some("rbuild import".into()),
        comment: opts.message.clone(),
        ..Default::default()
    }];
    let config_bytes = config.to_canonical_bytes();
    let config_digest = store.put_blob_bytes(&config_bytes)?;
    let layer = Descriptor::new(mt::OCI_LAYER_GZIP, layer_digest, layer_size);
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(mt::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
        layers: vec![layer.clone()],
        subject: None,
        annotations: Default::default(),
    };
    let manifest = RawManifest::from_image(&m)?;
    store.put_manifest(&manifest)?;
    Ok(Imported { manifest, config_digest, layer, diff_id: info.diff_id })
}

/// Split shell-like words: whitespace separates, quotes group, backslash escapes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn change_err(change: &str, reason: impl Into<String>) -> Error {
    Error::InvalidJson { what: "--change", reason: format!("{change:?}: {}", reason.into()) }
}

/// A JSON array of strings, or shell form wrapped in `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    if rest.trim_start().starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest.trim()) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.trim().to_string()]
}

/// `K=V K2="v 2"` pairs, or the legacy `K V` form when there is no `=` in the first word.
fn pairs(change: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| change_err(change, "expected KEY=VALUE or KEY VALUE"))?;
        return Ok(vec![(k.to_string(), words(v.trim()).join(" "))]);
    }
    words(rest)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(change_err(change, format!("{w:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Apply one Dockerfile-like change (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`,
/// `EXPOSE`, `LABEL`, `VOLUME`, `STOPSIGNAL`) to `config`.
pub fn apply_change(config: &mut ImageConfig, change: &str) -> Result<()> {
    let trimmed = change.trim();
    let (word, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(change_err(change, format!("{word} needs an argument")));
    }
    let c = config.config_mut();
    match word.to_ascii_uppercase().as_str() {
        "CMD" => c.cmd = Some(command(rest)),
        "ENTRYPOINT" => c.entrypoint = Some(command(rest)),
        "ENV" => {
            for (k, v) in pairs(change, rest)? {
                let prefix = format!("{k}=");
                c.env.retain(|e| !e.starts_with(&prefix));
                c.env.push(format!("{k}={v}"));
            }
        }
        "WORKDIR" => c.working_dir = Some(rest.to_string()),
        "USER" => c.user = Some(rest.to_string()),
        "STOPSIGNAL" => c.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            for p in words(rest) {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let ok = !port.is_empty()
                    && port.split('-').all(|x| x.parse::<u16>().is_ok())
                    && matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(change_err(change, format!("{p:?} is not PORT[/tcp|udp|sctp]")));
                }
                c.exposed_ports.insert(format!("{port}/{}", proto.to_ascii_lowercase()), serde_json::json!({}));
            }
        }
        "LABEL" => {
            for (k, v) in pairs(change, rest)? {
                c.labels.insert(k, v);
            }
        }
        "VOLUME" => {
            let vols = if rest.starts_with('[') {
                serde_json::from_str::<Vec<String>>(rest).map_err(|e| change_err(change, e.to_string()))?
            } else {
                words(rest)
            };
            for v in vols {
                c.volumes.insert(v, serde_json::json!({}));
            }
        }
        other => {
            return Err(change_err(
                change,
                format!(
                    "{other} is not supported (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL are)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let mut c = ImageConfig::for_host();
        for ch in [
            r#"CMD ["sh"]"#,
            "ENTRYPOINT echo hi",
            r#"ENV A=1 B="two words""#,
            "ENV C three",
            "WORKDIR /app",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            r#"LABEL org.x="y z""#,
            r#"VOLUME ["/data"]"#,
            "STOPSIGNAL SIGTERM",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        let cc = c.config.unwrap();
        assert_eq!(cc.cmd.unwrap(), ["sh"]);
        assert_eq!(cc.entrypoint.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(cc.env, ["A=1", "B=two words", "C=three"]);
        assert_eq!(cc.working_dir.as_deref(), Some("/app"));
        assert_eq!(cc.user.as_deref(), Some("1000:1000"));
        assert!(cc.exposed_ports.contains_key("80/tcp") && cc.exposed_ports.contains_key("53/udp"));
        assert_eq!(cc.labels["org.x"], "y z");
        assert!(cc.volumes.contains_key("/data"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGTERM"));
        let mut c = ImageConfig::for_host();
        assert!(apply_change(&mut c, "RUN x").unwrap_err().to_string().contains("not supported"));
        assert!(apply_change(&mut c, "EXPOSE http").is_err());
        assert!(apply_change(&mut c, "CMD").is_err());
    }
}

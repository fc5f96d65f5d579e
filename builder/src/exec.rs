//! RUN: the parent's layers unpacked as snapshots (once per chain ID), a writable snapshot
//! on top, the command in the sandbox with its mounts, and what it changed written as
//! the step's layer.

use crate::cache::LayerRecord;
use crate::solver::{Builder, State, state_of_image};
use crate::{Error, Result};
use rbuild_frontend::graph::{ExecOp, MountType, NetworkMode, Sharing, SourceRef, Step};
use rbuild_image::layer::{Change, WriterOptions};
use rbuild_runtime::sandbox::{
    BindSource, CacheSharing, Executor, MountSpec, Network, RunIo, RunSpec, Sandbox, SecretSource, Stream,
};
use rbuild_runtime::snapshot::{self, Snapshotter};
use std::sync::Arc;

impl Builder<'_> {
    fn snapshotter(&self) -> Result<&dyn Snapshotter> {
        let s = self.snapshotter.get_or_init(|| {
            snapshot::open(self.store.root(), rbuild_runtime::sandbox::store_trees(self.store.root()))
                .map_err(|e| e.to_string())
        });
        s.as_ref().map(|b| b.as_ref()).map_err(|e| Error::Invalid(format!("snapshots: {e}")))
    }

    /// The sandbox RUN steps (and rootless extractions) go through.
    fn sandbox(&self) -> Result<Sandbox> {
        let sandbox = Sandbox::new(self.store.root())?;
        Ok(match &self.req.init_exe {
            Some(p) => sandbox.with_init_exe(p.clone()),
            None => sandbox,
        })
    }

    /// Unpack a state's layers as committed snapshots; the top chain ID. Rootless with
    /// subordinate ids, layers are applied inside the sandbox's user namespace so their
    /// files keep the owners the image gives them.
    fn unpack(&self, st: &State) -> Result<Option<String>> {
        self.ensure_all_local(&st.layers)?;
        let sn = self.snapshotter()?;
        let diff_ids: Vec<_> = st.layers.iter().map(|l| l.diff_id.clone()).collect();
        let store = &self.store;
        let layers = &st.layers;
        let in_userns = if nix::unistd::geteuid().is_root() {
            None
        } else {
            Some(self.sandbox()?).filter(|s| s.extracts_in_userns())
        };
        let top = snapshot::unpack(sn, &diff_ids, &mut |i, dir, style| {
            let f = store.open_blob(&layers[i].desc.digest)?;
            match &in_userns {
                Some(sb) => sb.apply_layer(f, dir, style, None, None)?,
                None => {
                    rbuild_image::layer::apply_layer(f, dir, &snapshot::apply_options(style))?;
                }
            }
            Ok(())
        })?;
        Ok(top)
    }

    /// Write `changes` as the layer on top of `parent` and, in the same pass, apply the
    /// tar being written into a new snapshot committed under the layer's chain ID, so the
    /// RUN that follows finds its rootfs ready instead of reading the blob back and
    /// extracting it again. When the snapshot cannot be made, the layer alone is written
    /// (the RUN extracts it as before).
    pub(crate) fn write_layer_snapshotted(&self, changes: Vec<Change>, parent: &State) -> Result<Option<LayerRecord>> {
        if changes.is_empty() {
            return Ok(None);
        }
        let prepared = (|| -> Result<_> {
            let parent_chain = self.unpack(parent)?;
            let sn = self.snapshotter()?;
            let key = format!("layer-{}-{}", std::process::id(), snapshot::unique());
            sn.prepare(&key, parent_chain.as_deref())?;
            match sn.extract_dir(&key) {
                Ok(x) => Ok((sn, key, x)),
                Err(e) => {
                    let _ = sn.remove(&key);
                    Err(e.into())
                }
            }
        })();
        let (sn, key, (dir, style)) = match prepared {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("no snapshot for the new layer ({e}); the next RUN extracts it");
                return self.write_layer(changes);
            }
        };
        let opts = WriterOptions { source_date_epoch: self.req.source_date_epoch, xattrs: true };
        // Rootless with subordinate ids, the tar goes to an applier in the user namespace
        // (owners as the layer says); else it is applied here.
        let in_userns = if nix::unistd::geteuid().is_root() {
            None
        } else {
            self.sandbox().ok().filter(|s| s.extracts_in_userns())
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let (written, applied) = std::thread::scope(|s| {
            let dir = &dir;
            let in_userns = &in_userns;
            let applier = s.spawn(move || -> Result<()> {
                let mut r = ChanReader { rx, cur: Vec::new(), pos: 0 };
                match in_userns {
                    Some(sb) => {
                        let mut a = sb.layer_applier(dir, style)?;
                        std::io::copy(&mut r, &mut a).map_err(Error::io(dir))?;
                        a.finish()?;
                    }
                    None => {
                        rbuild_image::layer::apply_tar(r, dir, &snapshot::apply_options(style))?;
                    }
                }
                Ok(())
            });
            let written = (move || -> Result<LayerRecord> {
                let w = crate::cancel::Checked::new(self.store.ingest()?, &self.cancel);
                let tee = Tee { inner: w, tx: Some(tx), buf: Vec::with_capacity(TEE_CHUNK) };
                let w =
                    rbuild_image::layer::write_layer(changes, tee, &opts).map_err(|e| self.cancelled_or(e.into()))?;
                let (diff_id, size) = w.finish().into_inner().commit(None, None)?;
                Ok(LayerRecord { diff_id, size })
            })();
            (written, applier.join())
        });
        let rec = match written {
            Ok(r) => r,
            Err(e) => {
                let _ = sn.remove(&key);
                return Err(e);
            }
        };
        match applied {
            Ok(Ok(_)) => {
                let mut ids: Vec<_> = parent.layers.iter().map(|l| l.diff_id.clone()).collect();
                ids.push(rec.diff_id.clone());
                let chain = snapshot::chain_ids(&ids).pop().expect("one layer at least");
                if sn.commit(&chain.to_string(), &key).is_err() {
                    let _ = sn.remove(&key);
                }
            }
            Ok(Err(e)) => {
                tracing::debug!("applying the new layer into a snapshot: {e}; the next RUN extracts it");
                let _ = sn.remove(&key);
            }
            Err(_) => {
                let _ = sn.remove(&key);
            }
        }
        Ok(Some(rec))
    }

    pub(crate) fn exec_step(&self, e: &ExecOp, parent: &State, n: u32, _step: &Step) -> Result<Option<LayerRecord>> {
        // The frontend carries RUN --device; the sandbox cannot attach CDI devices yet, and
        // running without one the Dockerfile asked for would be wrong.
        if let Some(d) = e.devices.first() {
            return Err(Error::Invalid(format!("RUN --device={}: CDI devices are not supported yet", d.name)));
        }
        let parent_chain = self.unpack(parent)?;
        let sn = self.snapshotter()?;
        let key = format!("build-{}-{}", std::process::id(), snapshot::unique());
        let rootfs = sn.prepare(&key, parent_chain.as_deref())?;
        let result = self.exec_in(e, parent, n, rootfs, &key);
        match result {
            Ok(Some((changes, diff_ids))) => {
                let rec = self.write_layer(changes);
                match &rec {
                    Ok(Some(l)) => {
                        let mut ids = diff_ids;
                        ids.push(l.diff_id.clone());
                        let chain = snapshot::chain_ids(&ids).pop().expect("one layer at least");
                        if sn.commit(&chain.to_string(), &key).is_err() {
                            let _ = sn.remove(&key);
                        }
                    }
                    _ => {
                        let _ = sn.remove(&key);
                    }
                }
                rec
            }
            Ok(None) => {
                let _ = sn.remove(&key);
                Ok(None)
            }
            Err(err) => {
                let _ = sn.remove(&key);
                Err(err)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn exec_in(
        &self,
        e: &ExecOp,
        parent: &State,
        n: u32,
        rootfs: Vec<snapshot::Mount>,
        key: &str,
    ) -> Result<Option<(Vec<Change>, Vec<rbuild_image::Digest>)>> {
        let mut env = e.env.clone();
        for (k, v) in &self.graph.proxy_env {
            env.push(format!("{k}={v}"));
        }
        let mut mounts = Vec::new();
        let mut scratch = Scratch { dirs: Vec::new(), root: self.store.root().to_path_buf() };
        for m in &e.mounts {
            let readonly = m.readonly;
            match m.kind {
                MountType::Bind => {
                    let subpath = m.source.clone().unwrap_or_else(|| "/".into());
                    let base = match &m.from {
                        None | Some(SourceRef::Context) => self.ctx.mount_tree(self.tmp.path())?,
                        Some(SourceRef::Stage { index, .. }) => self.materialize(&self.stage_state(*index)?)?,
                        Some(SourceRef::Image { reference }) => {
                            self.materialize(&state_of_image(&self.resolver.base(reference)?))?
                        }
                    };
                    let source = if readonly { BindSource::Host(base) } else { self.throwaway(&base, &mut scratch)? };
                    mounts.push(MountSpec::Bind { source, subpath, target: m.target.clone(), readonly });
                }
                MountType::Cache => mounts.push(MountSpec::Cache {
                    id: cache_identity(m.id.as_deref().unwrap_or(&m.target), m.uid, m.gid, m.mode),
                    target: m.target.clone(),
                    sharing: match m.sharing {
                        Some(Sharing::Private) => CacheSharing::Private,
                        Some(Sharing::Locked) => CacheSharing::Locked,
                        _ => CacheSharing::Shared,
                    },
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o755),
                    readonly,
                }),
                MountType::Tmpfs => mounts.push(MountSpec::Tmpfs { target: m.target.clone(), size: m.size }),
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    if let Some(var) = &m.env {
                        match self.req.secrets.get(&id) {
                            Some(src) => {
                                env.push(format!("{var}={}", String::from_utf8_lossy(&secret_bytes(&id, src)?)))
                            }
                            None if m.required => {
                                return Err(Error::Invalid(format!(
                                    "secret {id} is required but was not provided (--secret id={id},src=FILE)"
                                )));
                            }
                            None => {}
                        }
                        if m.target.is_empty() {
                            continue;
                        }
                    }
                    mounts.push(MountSpec::Secret {
                        id,
                        target: (!m.target.is_empty()).then(|| m.target.clone()),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        mode: m.mode.unwrap_or(0o400),
                        required: m.required,
                    });
                }
                MountType::Ssh => mounts.push(MountSpec::Ssh {
                    id: m.id.clone().unwrap_or_else(|| "default".into()),
                    target: (!m.target.is_empty()).then(|| m.target.clone()),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o600),
                    required: m.required,
                }),
                MountType::Heredoc => {
                    let dir = self.tmp.path().join(format!("heredoc-{}", snapshot::unique()));
                    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
                    for f in &e.heredocs {
                        let p = dir.join(&f.name);
                        std::fs::write(&p, &f.data).map_err(Error::io(&p))?;
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode.unwrap_or(0o755)))
                            .map_err(Error::io(&p))?;
                    }
                    mounts.push(MountSpec::Bind {
                        source: BindSource::Host(dir),
                        subpath: "/".into(),
                        target: m.target.clone(),
                        readonly: true,
                    });
                }
            }
        }
        let network = match (e.network, self.req.network.as_deref()) {
            (NetworkMode::None, _) | (_, Some("none")) => Network::None,
            _ => Network::Host,
        };
        let mut secrets = std::collections::BTreeMap::new();
        for (k, v) in &self.req.secrets {
            secrets.insert(k.clone(), v.clone());
        }
        let spec = RunSpec {
            rootfs,
            args: e.args.clone(),
            env,
            cwd: e.cwd.clone(),
            user: (!e.user.is_empty()).then(|| e.user.clone()),
            hostname: None,
            network,
            mounts,
            secrets,
            ssh_agents: self.req.ssh.clone(),
            extra_hosts: Vec::new(),
            timeout: None,
            // Only reachable with --allow security.insecure (checked before the build).
            security: rbuild_runtime::sandbox::Security {
                privileged: e.security == rbuild_frontend::graph::SecurityMode::Insecure,
                ..Default::default()
            },
            ..Default::default()
        };
        let sandbox = self.sandbox()?;
        let progress = self.progress.clone();
        let mut io = RunIo::capture(move |_s: Stream, bytes: &[u8]| progress.output(n, bytes));
        io.cancel = Some(Arc::clone(&self.cancel));
        let outcome = sandbox.run(&spec, io)?;
        if outcome.cancelled {
            return Err(Error::Cancelled);
        }
        if let Some(err) = &outcome.exec_error {
            return Err(Error::Step {
                span: Default::default(),
                instruction: String::new(),
                message: format!("process {:?} could not be started: {err}", e.args.join(" ")),
                tail: outcome.tail.clone(),
            });
        }
        if outcome.code != 0 {
            let how = match outcome.signal {
                Some(s) => format!("killed by signal {s}"),
                None => format!("exit code: {}", outcome.code),
            };
            return Err(Error::Step {
                span: Default::default(),
                instruction: String::new(),
                message: format!("process {:?} did not complete successfully: {how}", e.args.join(" ")),
                tail: outcome.tail.clone(),
            });
        }
        let sn = self.snapshotter()?;
        // Rootless, the upperdir holds host ids (the caller, subordinate ids): the layer
        // records the ones the command saw in its user namespace.
        let exclude = rbuild_runtime::diff::Exclude {
            paths: outcome.mountpoints.clone(),
            if_empty: outcome.created_parents.clone(),
            if_unchanged: Vec::new(),
        };
        let changes = rbuild_runtime::diff::changes_mapped(&sn.diff_source(key)?, &exclude, sandbox.id_map())?;
        let changes = self.drop_untouched_dirs(changes, parent, sandbox.id_map())?;
        let diff_ids = parent.layers.iter().map(|l| l.diff_id.clone()).collect();
        Ok(Some((changes, diff_ids)))
    }

    /// What an rw bind mount of `base` (the context's tree, a stage's) writes to: as in
    /// BuildKit, the writes land in a layer of their own that is thrown away when the step
    /// ends, and `base` never changes. An overlay with a fresh upperdir over `base` where
    /// overlayfs mounts here, else a copy of `base`.
    fn throwaway(&self, base: &std::path::Path, scratch: &mut Scratch) -> Result<BindSource> {
        // Never inside `base` (a store kept in the context directory): overlayfs refuses an
        // upperdir inside its lowerdir, and a copy would copy itself.
        let tmp = std::env::temp_dir();
        let parent = [self.tmp.path(), tmp.as_path()].into_iter().find(|p| !p.starts_with(base)).ok_or_else(|| {
            Error::Invalid(format!(
                "rw bind mount of {}: no scratch directory outside it (the store and TMPDIR are inside)",
                base.display()
            ))
        })?;
        let dir = parent.join(format!("rbuild-rw-{}-{}", std::process::id(), snapshot::unique()));
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        scratch.dirs.push(dir.clone());
        let text = base.to_string_lossy();
        // Overlay options cannot carry these characters.
        let overlay_ok = self.snapshotter()?.name() == "overlay" && !text.contains([',', ':', '\\']);
        if overlay_ok {
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            for d in [&upper, &work] {
                std::fs::create_dir(d).map_err(Error::io(d))?;
            }
            let mut options = vec![
                format!("lowerdir={text}"),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", work.display()),
            ];
            if !nix::unistd::geteuid().is_root() {
                options.push("userxattr".into());
            }
            return Ok(BindSource::Snapshot(vec![snapshot::Mount {
                fstype: "overlay".into(),
                source: "overlay".into(),
                options,
            }]));
        }
        let copy = dir.join("tree");
        rbuild_runtime::sandbox::store_trees(self.store.root()).copy_tree(base, &copy)?;
        Ok(BindSource::Host(copy))
    }

    /// A directory copied up only because the sandbox put a mount point in it (`/etc` for
    /// `/etc/hosts`) and otherwise unchanged stays out of the layer. Owners are compared
    /// as the layers record them: a change's own (mapped back from the user namespace when
    /// rootless), else the host's through `map`.
    fn drop_untouched_dirs(
        &self,
        changes: Vec<Change>,
        parent: &State,
        map: Option<&rbuild_runtime::sandbox::IdMap>,
    ) -> Result<Vec<Change>> {
        use std::os::unix::fs::MetadataExt;
        let paths: Vec<String> = changes.iter().map(path_of).collect();
        let has_child =
            |p: &str| paths.iter().any(|o| o.len() > p.len() && o.starts_with(p) && o.as_bytes()[p.len()] == b'/');
        let opaque: Vec<String> = changes
            .iter()
            .filter_map(|c| if let Change::Opaque(p) = c { Some(crate::view::clean(p)) } else { None })
            .collect();
        let mut view = None;
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            if let Change::Add(a) = &c {
                let p = crate::view::clean(&a.path);
                if !has_child(&p) && !opaque.contains(&p) {
                    if let Ok(md) = std::fs::symlink_metadata(&a.source) {
                        if md.is_dir() {
                            if view.is_none() {
                                view = Some(self.view(parent)?);
                            }
                            let v = view.as_ref().expect("set");
                            let uid = a.meta.uid.or_else(|| map.map_or(Some(md.uid()), |m| m.uid_inside(md.uid())));
                            let gid = a.meta.gid.or_else(|| map.map_or(Some(md.gid()), |m| m.gid_inside(md.gid())));
                            if let Some((_, m)) = v.lookup_raw(&p) {
                                if m.is_dir()
                                    && m.mode == md.mode() & 0o7777
                                    && Some(m.uid) == uid
                                    && Some(m.gid) == gid
                                {
                                    continue;
                                }
                            }
                        }
                    }
                }
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// The throwaway directories of a step's rw bind mounts: removed when the step ends,
/// however it ends (rootless, through the user namespace when the command left files of
/// subordinate ids).
struct Scratch {
    dirs: Vec<std::path::PathBuf>,
    root: std::path::PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for d in &self.dirs {
            if let Err(e) = rbuild_runtime::sandbox::store_trees(&self.root).remove_tree(d) {
                tracing::debug!("removing {}: {e}", d.display());
            }
        }
    }
}

/// Bytes handed to the applier in chunks this big (a tar header alone is 512 bytes).
const TEE_CHUNK: usize = 256 << 10;

/// A writer that also sends what it writes to a channel (the snapshot applier). When the
/// applier is gone (it failed), writing goes on to `inner` alone.
struct Tee<W> {
    inner: W,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

impl<W> Tee<W> {
    fn send(&mut self) {
        if let Some(tx) = &self.tx {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(TEE_CHUNK));
            if tx.send(chunk).is_err() {
                self.tx = None;
            }
        }
    }

    /// Send what is left, close the channel (the applier sees the end), give `inner` back.
    fn finish(mut self) -> W {
        self.send();
        let Tee { inner, .. } = self;
        inner
    }
}

impl<W: std::io::Write> std::io::Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        if self.tx.is_some() {
            self.buf.extend_from_slice(&b[..n]);
            if self.buf.len() >= TEE_CHUNK {
                self.send();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The reading end of a [`Tee`]: end of stream when the writer is done (or gone).
struct ChanReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The identity of a cache mount's directory. As in BuildKit, a mount that gives
/// `uid`, `gid` or `mode` starts from a directory made with them, and that base is part
/// of the cache's key: `id=x,uid=10` and `id=x` are two caches, while `sharing` (how
/// users take turns) is not part of it.
fn cache_identity(id: &str, uid: Option<u32>, gid: Option<u32>, mode: Option<u32>) -> String {
    if uid.is_none() && gid.is_none() && mode.is_none() {
        return id.to_string();
    }
    format!("{id}:uid={},gid={},mode={:o}", uid.unwrap_or(0), gid.unwrap_or(0), mode.unwrap_or(0o755))
}

fn secret_bytes(id: &str, s: &SecretSource) -> Result<Vec<u8>> {
    Ok(match s {
        SecretSource::Bytes(b) => b.clone(),
        SecretSource::File(p) => std::fs::read(p).map_err(Error::io(p))?,
        SecretSource::Env(v) => std::env::var(v)
            .map_err(|_| Error::Invalid(format!("secret {id}: environment variable {v} is not set")))?
            .into_bytes(),
    })
}

fn path_of(c: &Change) -> String {
    let p = match c {
        Change::Add(a) => &a.path,
        Change::Dir(d) => &d.path,
        Change::Whiteout(p) | Change::Opaque(p) => p,
    };
    crate::view::clean(p)
}

//! The mount stage: the root filesystem, /proc, /dev, /sys, masked paths, injected files
//! and the step's mounts, planned as a list (pure) then carried out through [`Sys`].

use crate::error::{Error, Result};
use crate::sandbox::spec::{InitDevice, InitMount, InitSpec};
use crate::sandbox::syscalls::{FileKind, Sys};
use crate::snapshot::Mount;
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

/// Paths hidden from the container, as Docker's default profile does.
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only, as Docker's default profile does.
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Device nodes every container gets: name, major, minor.
pub const DEVICES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// One step of the mount stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Mount the root filesystem at the sandbox's rootfs directory.
    Rootfs(Vec<Mount>),
    /// Make the root filesystem nodev: no device rules confine this sandbox, and a node an
    /// image layer brought would open the host's device.
    NoDev,
    /// A fresh /proc of the new pid namespace.
    Proc,
    /// A tmpfs /dev with the standard nodes, devpts and shm.
    Dev,
    /// /sys, read-only.
    Sys,
    /// Hide a path (tmpfs over a directory, /dev/null over a file).
    Mask(String),
    /// Make a path read-only.
    ReadOnly(String),
    /// A device node of the spec (`--device`).
    Device(InitDevice),
    /// A mount of the spec.
    User(InitMount),
}

/// The mount stage of `spec`, in order. Mounts run parents first (fewest path components
/// first, keeping the spec's order otherwise), like Docker.
pub fn plan(spec: &InitSpec) -> Vec<Op> {
    let mut ops = vec![Op::Rootfs(spec.rootfs.clone())];
    if spec.nodev {
        ops.push(Op::NoDev);
    }
    ops.extend([Op::Proc, Op::Dev]);
    ops.extend(spec.devices.iter().cloned().map(Op::Device));
    ops.push(Op::Sys);
    if !spec.unmasked {
        ops.extend(MASKED.iter().map(|p| Op::Mask(p.to_string())));
        ops.extend(READONLY.iter().map(|p| Op::ReadOnly(p.to_string())));
    }
    let mut user: Vec<&InitMount> = spec.mounts.iter().collect();
    user.sort_by_key(|m| crate::util::clean_abs(m.target()).split('/').filter(|s| !s.is_empty()).count());
    ops.extend(user.into_iter().cloned().map(Op::User));
    ops
}

/// What the stage created that was not in the image: mount points (left out of the layer)
/// and the directories made to hold them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Created {
    /// Mount targets the stage created, or injected files.
    pub targets: Vec<String>,
    /// Directories created on the way to a target.
    pub parents: Vec<String>,
    /// Existing directories the stage created something in (overlayfs copies them up):
    /// path, mode, uid, gid before.
    pub touched: Vec<(String, u32, u32, u32)>,
}

/// Carries out a plan.
pub struct Stage<'a> {
    sys: &'a dyn Sys,
    rootfs: PathBuf,
    stage: PathBuf,
    rootless: bool,
    n: usize,
    files_ready: bool,
    /// What was created.
    pub created: Created,
}

impl<'a> Stage<'a> {
    /// A stage mounting under `rootfs`, with `stage` a private scratch directory.
    pub fn new(sys: &'a dyn Sys, rootfs: &Path, stage: &Path, rootless: bool) -> Stage<'a> {
        Stage {
            sys,
            rootfs: rootfs.into(),
            stage: stage.into(),
            rootless,
            n: 0,
            files_ready: false,
            created: Created::default(),
        }
    }

    /// Run every op.
    pub fn run(&mut self, ops: &[Op]) -> Result<()> {
        // The scratch tmpfs lives only in this mount namespace: secrets never reach the disk.
        self.sys.mount("tmpfs", &self.stage, "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=700")?;
        for op in ops {
            self.op(op)?;
        }
        Ok(())
    }

    fn op(&mut self, op: &Op) -> Result<()> {
        let sys = self.sys;
        match op {
            Op::Rootfs(mounts) => {
                let rootfs = self.rootfs.clone();
                mount_all(sys, mounts, &rootfs)
            }
            Op::NoDev => {
                let keep = sys.locked_flags(&self.rootfs) | sys.readonly_flag(&self.rootfs);
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | keep;
                sys.mount("", &self.rootfs, "", flags, "")
            }
            Op::Proc => {
                let t = self.target("/proc", FileKind::Dir, false)?;
                sys.mount("proc", &t, "proc", MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, "")
            }
            Op::Dev => self.dev(),
            Op::Sys => {
                let t = self.target("/sys", FileKind::Dir, false)?;
                let ro = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
                if sys.mount("sysfs", &t, "sysfs", ro, "").is_err() {
                    // A new sysfs needs a network namespace of our own; otherwise the host's, read-only.
                    sys.mount("/sys", &t, "", MsFlags::MS_BIND | MsFlags::MS_REC, "")?;
                    remount_ro(sys, &t)?;
                }
                Ok(())
            }
            Op::Mask(p) => {
                let t = sys.resolve(&self.rootfs, p)?;
                // Best effort, like runc: a kernel without the path or refusing the mount
                // (some are locked in a user namespace) leaves nothing to hide.
                let _ = match sys.kind(&t) {
                    None => Ok(()),
                    Some(FileKind::Dir) => sys.mount("tmpfs", &t, "tmpfs", MsFlags::MS_RDONLY, "size=0"),
                    Some(FileKind::File) => {
                        let null = self.rootfs.join("dev/null");
                        sys.mount(&null.to_string_lossy(), &t, "", MsFlags::MS_BIND, "")
                    }
                };
                Ok(())
            }
            Op::ReadOnly(p) => {
                let t = sys.resolve(&self.rootfs, p)?;
                if sys.kind(&t).is_none() {
                    return Ok(());
                }
                sys.mount(&t.to_string_lossy(), &t, "", MsFlags::MS_BIND | MsFlags::MS_REC, "")?;
                remount_ro(sys, &t)
            }
            Op::Device(d) => self.device(d),
            Op::User(m) => self.user(m),
        }
    }

    /// A `--device` node: made with mknod, or (rootless, where mknod of devices is not
    /// allowed) the host's node bound onto an empty file.
    fn device(&mut self, d: &InitDevice) -> Result<()> {
        let t = self.target(&d.target, FileKind::File, true)?;
        let sys = self.sys;
        if self.rootless {
            return sys.mount(&d.host.to_string_lossy(), &t, "", MsFlags::MS_BIND, "");
        }
        // target() made an empty file for the node: replace it.
        sys.remove_file(&t)?;
        sys.mknod_dev(&t, d.mode, d.block, d.major, d.minor)?;
        sys.chown(&t, d.uid, d.gid)
    }

    fn dev(&mut self) -> Result<()> {
        let sys = self.sys;
        let dev = self.target("/dev", FileKind::Dir, false)?;
        sys.mount("tmpfs", &dev, "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, "mode=755,size=65536k")?;
        for (name, major, minor) in DEVICES {
            let p = dev.join(name);
            if self.rootless || sys.mknod_char(&p, 0o666, *major, *minor).is_err() {
                // No mknod in a user namespace: bind the host's node onto an empty file.
                sys.touch(&p, 0o666)?;
                sys.mount(&format!("/dev/{name}"), &p, "", MsFlags::MS_BIND, "")?;
            }
        }
        sys.mkdir(&dev.join("pts"), 0o755)?;
        let pts_opts = if self.rootless {
            "newinstance,ptmxmode=0666,mode=0620"
        } else {
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        };
        sys.mount("devpts", &dev.join("pts"), "devpts", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, pts_opts)?;
        sys.symlink("pts/ptmx", &dev.join("ptmx"))?;
        sys.mkdir(&dev.join("shm"), 0o1777)?;
        sys.mount(
            "shm",
            &dev.join("shm"),
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            "mode=1777,size=65536k",
        )?;
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("core", "/proc/kcore"),
        ] {
            sys.symlink(target, &dev.join(link))?;
        }
        Ok(())
    }

    fn user(&mut self, m: &InitMount) -> Result<()> {
        let sys = self.sys;
        match m {
            InitMount::Bind { source, target, readonly } => {
                let kind = sys
                    .kind_follow(source)
                    .ok_or_else(|| Error::Spec(format!("bind mount source {} does not exist", source.display())))?;
                self.bind(source, target, kind, *readonly, false)
            }
            InitMount::Staged { mounts, subpath, target, readonly } => {
                self.n += 1;
                let dir = self.stage.join(format!("m{}", self.n));
                sys.mkdir(&dir, 0o700)?;
                mount_all(sys, mounts, &dir)?;
                let source = sys.resolve(&dir, subpath)?;
                let kind = sys
                    .kind_follow(&source)
                    .ok_or_else(|| Error::Spec(format!("bind mount source {subpath} does not exist in its stage")))?;
                self.bind(&source, target, kind, *readonly, false)
            }
            InitMount::Tmpfs { target, size, mode } => {
                let t = self.target(target, FileKind::Dir, false)?;
                let mut data = format!("mode={mode:o}");
                if let Some(s) = size {
                    data.push_str(&format!(",size={s}"));
                }
                sys.mount("tmpfs", &t, "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &data)
            }
            InitMount::Volume { source, target, readonly, seed } => {
                if *seed {
                    self.seed(source, target)?;
                }
                self.bind(source, target, FileKind::Dir, *readonly, false)
            }
            InitMount::File { target, content, uid, gid, mode, readonly, injected } => {
                let files = self.stage.join("files");
                if !self.files_ready {
                    sys.mkdir(&files, 0o755)?;
                    self.files_ready = true;
                }
                self.n += 1;
                let src = files.join(format!("f{}", self.n));
                sys.write_file(&src, content, *mode, *uid, *gid)?;
                self.bind(&src, target, FileKind::File, *readonly, *injected)
            }
        }
    }

    /// docker's copy-up: an empty volume directory gets what the root filesystem has at
    /// `target` (a directory; symlinks on the way followed inside the rootfs), with that
    /// directory's owner and mode.
    fn seed(&self, source: &Path, target: &str) -> Result<()> {
        let from = self.sys.resolve(&self.rootfs, target)?;
        if self.sys.kind(&from) != Some(FileKind::Dir) {
            return Ok(());
        }
        if std::fs::read_dir(source).map_err(Error::io(source))?.next().is_some() {
            return Ok(());
        }
        for e in std::fs::read_dir(&from).map_err(Error::io(&from))? {
            let e = e.map_err(Error::io(&from))?;
            crate::util::copy_tree(&e.path(), &source.join(e.file_name()))?;
        }
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(&from).map_err(Error::io(&from))?;
        let c = crate::util::cstr(source)?;
        // SAFETY: valid C string.
        unsafe { libc::lchown(c.as_ptr(), m.uid(), m.gid()) };
        std::fs::set_permissions(source, std::fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(Error::io(source))
    }

    fn bind(&mut self, source: &Path, target: &str, kind: FileKind, readonly: bool, injected: bool) -> Result<()> {
        let t = self.target(target, kind, injected)?;
        self.sys.mount(&source.to_string_lossy(), &t, "", MsFlags::MS_BIND | MsFlags::MS_REC, "")?;
        if readonly {
            remount_ro(self.sys, &t)?;
        }
        Ok(())
    }

    /// Resolve `target` under the rootfs, creating what is missing (parents as
    /// directories, the last as `kind`) and recording it. A symlink on the way is followed
    /// inside the rootfs, also when it dangles (`/etc/resolv.conf ->
    /// ../run/systemd/resolve/stub-resolv.conf`): what it points to is created, as runc does.
    fn target(&mut self, target: &str, kind: FileKind, injected: bool) -> Result<PathBuf> {
        let clean = crate::util::clean_abs(target);
        let parts: Vec<&str> = clean.split('/').filter(|s| !s.is_empty()).collect();
        let mut prefix = String::new();
        let mut resolved = self.rootfs.clone();
        for (i, part) in parts.iter().enumerate() {
            prefix.push('/');
            prefix.push_str(part);
            resolved = self.sys.resolve(&self.rootfs, &prefix)?;
            let last = i + 1 == parts.len();
            match self.sys.kind(&resolved) {
                None => {
                    // The container path of what is made: the prefix, or where its link points.
                    let rel = resolved.strip_prefix(&self.rootfs).map_err(|_| {
                        Error::Spec(format!("mount target {target}: {prefix} resolves outside the root"))
                    })?;
                    let made = format!("/{}", rel.to_string_lossy());
                    self.make_parents(&made, target)?;
                    self.note_touched(&made)?;
                    if last && kind == FileKind::File {
                        self.sys.touch(&resolved, 0o644)?;
                    } else {
                        self.sys.mkdir(&resolved, 0o755)?;
                    }
                    if last {
                        self.created.targets.push(made);
                    } else {
                        self.created.parents.push(made);
                    }
                }
                Some(_) if last && injected => {
                    let rel = resolved.strip_prefix(&self.rootfs).unwrap_or(Path::new(""));
                    self.created.targets.push(format!("/{}", rel.to_string_lossy()));
                }
                Some(k) if !last && k != FileKind::Dir => {
                    return Err(Error::Spec(format!("mount target {target}: {prefix} is not a directory")));
                }
                Some(_) => {}
            }
        }
        Ok(resolved)
    }

    /// Record the existing directory a new entry `made` goes into (overlayfs copies it up).
    fn note_touched(&mut self, made: &str) -> Result<()> {
        let parent = made.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        if !parent.is_empty()
            && !self.created.parents.iter().any(|p| p == parent)
            && !self.created.touched.iter().any(|t| t.0 == parent)
        {
            if let Some((mode, uid, gid)) = self.sys.owner(&self.sys.resolve(&self.rootfs, parent)?) {
                self.created.touched.push((parent.to_string(), mode, uid, gid));
            }
        }
        Ok(())
    }

    /// Create the missing directories above `made` (a dangling link's destination: none of
    /// them exists yet, so none is a link).
    fn make_parents(&mut self, made: &str, target: &str) -> Result<()> {
        let parts: Vec<&str> = made.split('/').filter(|s| !s.is_empty()).collect();
        let mut p = String::new();
        for part in &parts[..parts.len().saturating_sub(1)] {
            p.push('/');
            p.push_str(part);
            let r = self.sys.resolve(&self.rootfs, &p)?;
            match self.sys.kind(&r) {
                Some(FileKind::Dir) => {}
                Some(FileKind::File) => {
                    return Err(Error::Spec(format!("mount target {target}: {p} is not a directory")));
                }
                None => {
                    self.note_touched(&p)?;
                    self.sys.mkdir(&r, 0o755)?;
                    self.created.parents.push(p.clone());
                }
            }
        }
        Ok(())
    }
}

/// Mount a snapshot's mounts at `target`. Overlay options longer than a page are made
/// relative to the lowerdirs' common parent (chdir there first), as containerd does.
pub fn mount_all(sys: &dyn Sys, mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        match m.fstype.as_str() {
            "bind" => {
                sys.mount(&m.source.to_string_lossy(), target, "", MsFlags::MS_BIND | MsFlags::MS_REC, "")?;
                if m.readonly() {
                    remount_ro(sys, target)?;
                }
            }
            "overlay" => {
                let mut data = m.options.join(",");
                let mut cwd = None;
                if data.len() > 4000 {
                    if let Some((short, dir)) = relative_options(&m.options) {
                        data = short;
                        cwd = Some(dir);
                    }
                }
                let prev = std::env::current_dir().ok();
                if let Some(dir) = &cwd {
                    std::env::set_current_dir(dir).map_err(Error::io(dir))?;
                }
                let flags = if m.readonly() { MsFlags::MS_RDONLY } else { MsFlags::empty() };
                let r = sys.mount("overlay", target, "overlay", flags, &data);
                if let (Some(_), Some(p)) = (&cwd, prev) {
                    let _ = std::env::set_current_dir(p);
                }
                r?;
            }
            other => {
                let flags = if m.readonly() { MsFlags::MS_RDONLY } else { MsFlags::empty() };
                let data = m.options.iter().filter(|o| *o != "ro" && *o != "rw").cloned().collect::<Vec<_>>().join(",");
                sys.mount(&m.source.to_string_lossy(), target, other, flags, &data)?;
            }
        }
    }
    Ok(())
}

fn relative_options(options: &[String]) -> Option<(String, PathBuf)> {
    let paths: Vec<&str> = options
        .iter()
        .flat_map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            match k {
                "lowerdir" => v.split(':').collect(),
                "upperdir" | "workdir" => vec![v],
                _ => vec![],
            }
        })
        .collect();
    let first = Path::new(paths.first()?);
    let mut common = first.parent()?.parent()?.to_path_buf();
    while !paths.iter().all(|p| Path::new(p).starts_with(&common)) {
        common = common.parent()?.to_path_buf();
    }
    let strip = |p: &str| {
        Path::new(p).strip_prefix(&common).map(|r| r.to_string_lossy().into_owned()).unwrap_or_else(|_| p.to_string())
    };
    let out = options
        .iter()
        .map(|o| match o.split_once('=') {
            Some(("lowerdir", v)) => format!("lowerdir={}", v.split(':').map(strip).collect::<Vec<_>>().join(":")),
            Some((k @ ("upperdir" | "workdir"), v)) => format!("{k}={}", strip(v)),
            _ => o.clone(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Some((out, common))
}

fn remount_ro(sys: &dyn Sys, t: &Path) -> Result<()> {
    let keep = sys.locked_flags(t);
    sys.mount("", t, "", MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::Network;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A pretend filesystem that records every call.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<String>>,
        files: RefCell<HashMap<PathBuf, FileKind>>,
        /// Symlinks: container path -> where it points (absolute).
        links: RefCell<HashMap<String, String>>,
        no_mknod: bool,
    }

    impl Sys for Fake {
        fn mount(&self, source: &str, target: &Path, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
            if fstype == "sysfs" {
                return Err(Error::Sandbox("no sysfs here".into()));
            }
            let ro = if flags.contains(MsFlags::MS_RDONLY) { " ro" } else { "" };
            let rm = if flags.contains(MsFlags::MS_REMOUNT) { " remount" } else { "" };
            let line = format!("mount {source} {} {fstype}{ro}{rm} {data}", target.display());
            self.calls.borrow_mut().push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            Ok(())
        }
        fn mkdir(&self, path: &Path, _mode: u32) -> Result<()> {
            self.files.borrow_mut().insert(path.into(), FileKind::Dir);
            self.calls.borrow_mut().push(format!("mkdir {}", path.display()));
            Ok(())
        }
        fn touch(&self, path: &Path, _mode: u32) -> Result<()> {
            self.files.borrow_mut().insert(path.into(), FileKind::File);
            self.calls.borrow_mut().push(format!("touch {}", path.display()));
            Ok(())
        }
        fn mknod_char(&self, path: &Path, _mode: u32, major: u64, minor: u64) -> Result<()> {
            if self.no_mknod {
                return Err(Error::Sandbox("EPERM".into()));
            }
            self.calls.borrow_mut().push(format!("mknod {} {major}:{minor}", path.display()));
            Ok(())
        }
        fn mknod_dev(&self, path: &Path, _mode: u32, block: bool, major: u64, minor: u64) -> Result<()> {
            let kind = if block { "b" } else { "c" };
            self.calls.borrow_mut().push(format!("mknod {} {kind} {major}:{minor}", path.display()));
            Ok(())
        }
        fn remove_file(&self, path: &Path) -> Result<()> {
            self.files.borrow_mut().remove(path);
            self.calls.borrow_mut().push(format!("rm {}", path.display()));
            Ok(())
        }
        fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
            self.calls.borrow_mut().push(format!("chown {uid}:{gid} {}", path.display()));
            Ok(())
        }
        fn symlink(&self, target: &str, path: &Path) -> Result<()> {
            self.calls.borrow_mut().push(format!("symlink {} -> {target}", path.display()));
            Ok(())
        }
        fn write_file(&self, path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> Result<()> {
            self.calls.borrow_mut().push(format!(
                "write {} {} {mode:o} {uid}:{gid}",
                path.display(),
                String::from_utf8_lossy(content)
            ));
            Ok(())
        }
        fn kind(&self, path: &Path) -> Option<FileKind> {
            let rel = path.strip_prefix("/r").ok()?;
            if rel.as_os_str().is_empty()
                || ["proc", "etc", "tmp", "proc/sys", "proc/kcore"].iter().any(|p| rel == Path::new(p))
            {
                return Some(if rel == Path::new("proc/kcore") { FileKind::File } else { FileKind::Dir });
            }
            self.files.borrow().get(path).copied()
        }
        fn kind_follow(&self, _path: &Path) -> Option<FileKind> {
            Some(FileKind::Dir)
        }
        fn owner(&self, _path: &Path) -> Option<(u32, u32, u32)> {
            Some((0o755, 0, 0))
        }
        fn resolve(&self, root: &Path, path: &str) -> Result<PathBuf> {
            let clean = crate::util::clean_abs(path);
            let p = self.links.borrow().get(&clean).cloned().unwrap_or(clean);
            Ok(root.join(p.trim_start_matches('/')))
        }
        fn readonly_flag(&self, _path: &Path) -> MsFlags {
            MsFlags::empty()
        }
        fn locked_flags(&self, _path: &Path) -> MsFlags {
            MsFlags::empty()
        }
    }

    fn spec(mounts: Vec<InitMount>) -> InitSpec {
        InitSpec {
            probe: false,
            sandbox_dir: "/s".into(),
            rootfs: vec![Mount {
                fstype: "overlay".into(),
                source: "overlay".into(),
                options: vec!["lowerdir=/l".into(), "upperdir=/u".into(), "workdir=/w".into()],
            }],
            rootless: None,
            id_map: None,
            remove: Vec::new(),
            extract: None,
            copy: None,
            network: Network::Host,
            hostname: "h".into(),
            mounts,
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: None,
            tty: false,
            caps: vec![],
            seccomp: vec![],
            no_new_privs: false,
            unmasked: false,
            devices: vec![],
            nodev: false,
            join: None,
            rlimits: Vec::new(),
        }
    }

    #[test]
    fn without_device_rules_the_rootfs_is_nodev() {
        let mut s = spec(vec![]);
        assert!(!plan(&s).contains(&Op::NoDev));
        s.nodev = true;
        let ops = plan(&s);
        assert_eq!(ops[1], Op::NoDev);
        let fake = Fake::default();
        let mut st = Stage::new(&fake, Path::new("/r"), Path::new("/s"), false);
        st.run(&ops[1..2]).unwrap();
        assert!(fake.calls.borrow().iter().any(|c| c == "mount /r remount"), "{:?}", fake.calls.borrow());
    }

    #[test]
    fn a_dangling_link_target_is_made_where_it_points_inside_the_root() {
        let fake = Fake::default();
        fake.links.borrow_mut().insert("/etc/resolv.conf".into(), "/run/systemd/resolve/stub-resolv.conf".into());
        let mut st = Stage::new(&fake, Path::new("/r"), Path::new("/s"), false);
        let m = InitMount::File {
            target: "/etc/resolv.conf".into(),
            content: b"nameserver 1.1.1.1\n".to_vec(),
            uid: 0,
            gid: 0,
            mode: 0o644,
            readonly: false,
            injected: true,
        };
        st.run(&[Op::User(m)]).unwrap();
        let calls = fake.calls.borrow().join("\n");
        for want in [
            "mkdir /r/run\n",
            "mkdir /r/run/systemd\n",
            "mkdir /r/run/systemd/resolve\n",
            "touch /r/run/systemd/resolve/stub-resolv.conf\n",
        ] {
            assert!(calls.contains(want), "{want}: {calls}");
        }
        assert!(calls.contains("mount /s/files/f1 /r/run/systemd/resolve/stub-resolv.conf"), "{calls}");
        assert_eq!(st.created.targets, ["/run/systemd/resolve/stub-resolv.conf"]);
        assert_eq!(st.created.parents, ["/run", "/run/systemd", "/run/systemd/resolve"]);
    }

    #[test]
    fn devices_are_made_and_privileged_runs_are_unmasked() {
        let mut s = spec(vec![]);
        s.devices.push(InitDevice {
            host: "/dev/loop-control".into(),
            target: "/dev/lc".into(),
            block: false,
            major: 10,
            minor: 237,
            mode: 0o600,
            uid: 0,
            gid: 0,
        });
        let ops = plan(&s);
        assert!(ops.iter().any(|o| matches!(o, Op::Mask(_))));
        let fake = Fake::default();
        let mut st = Stage::new(&fake, Path::new("/r"), Path::new("/s"), false);
        st.run(&ops).unwrap();
        assert!(fake.calls.borrow().iter().any(|c| c == "mknod /r/dev/lc c 10:237"), "{:?}", fake.calls.borrow());
        s.unmasked = true;
        assert!(!plan(&s).iter().any(|o| matches!(o, Op::Mask(_) | Op::ReadOnly(_))));
    }

    #[test]
    fn plan_mounts_parents_first_and_records_what_it_creates() {
        let s = spec(vec![
            InitMount::Tmpfs { target: "/cache/deep/x".into(), size: Some(1024), mode: 0o755 },
            InitMount::File {
                target: "/run/secrets/tok".into(),
                content: b"s3cret".to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o400,
                readonly: true,
                injected: false,
            },
            InitMount::File {
                target: "/etc/hosts".into(),
                content: b"127.0.0.1 localhost".to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
                readonly: false,
                injected: true,
            },
        ]);
        let ops = plan(&s);
        assert_eq!(ops[0], Op::Rootfs(s.rootfs.clone()));
        assert_eq!(ops[1..4], [Op::Proc, Op::Dev, Op::Sys]);
        // Fewest components first: /etc/hosts (2) before /run/secrets/tok (3) before /cache/deep/x (3, later in spec).
        let users: Vec<&str> =
            ops.iter().filter_map(|o| if let Op::User(m) = o { Some(m.target()) } else { None }).collect();
        assert_eq!(users, ["/etc/hosts", "/cache/deep/x", "/run/secrets/tok"]);

        let fake = Fake::default();
        let mut st = Stage::new(&fake, Path::new("/r"), Path::new("/s/stage"), false);
        st.run(&ops).unwrap();
        let calls = fake.calls.borrow().join("\n");
        assert!(
            calls.starts_with(
                "mount tmpfs /s/stage tmpfs mode=700\nmount overlay /r overlay lowerdir=/l,upperdir=/u,workdir=/w"
            ),
            "{calls}"
        );
        assert!(calls.contains("mount proc /r/proc proc\n"), "{calls}");
        assert!(calls.contains("mknod /r/dev/null 1:3"), "{calls}");
        assert!(
            calls.contains("mount /sys /r/sys\nmount /r/sys ro remount"),
            "sysfs falls back to a read-only bind: {calls}"
        );
        assert!(
            calls.contains("mount tmpfs /r/proc/kcore") || calls.contains("mount /r/dev/null /r/proc/kcore"),
            "{calls}"
        );
        assert!(calls.contains("mount /r/proc/sys ro remount"), "{calls}");
        assert!(calls.contains("write /s/stage/files/f1 127.0.0.1 localhost 644 0:0"), "{calls}");
        assert!(calls.contains("write /s/stage/files/f2 s3cret 400 0:0\nmkdir /r/run\nmkdir /r/run/secrets\ntouch /r/run/secrets/tok\nmount /s/stage/files/f2 /r/run/secrets/tok\nmount /r/run/secrets/tok ro remount"), "{calls}");
        assert!(calls.contains("mount tmpfs /r/cache/deep/x tmpfs mode=755,size=1024"), "{calls}");
        assert_eq!(st.created.targets, ["/dev", "/sys", "/etc/hosts", "/cache/deep/x", "/run/secrets/tok"]);
        assert_eq!(st.created.parents, ["/cache", "/cache/deep", "/run", "/run/secrets"]);
        assert_eq!(st.created.touched, [("/etc".to_string(), 0o755, 0, 0)]);
    }

    #[test]
    fn rootless_binds_host_devices() {
        let fake = Fake { no_mknod: true, ..Default::default() };
        let mut st = Stage::new(&fake, Path::new("/r"), Path::new("/s"), true);
        st.run(&[Op::Dev]).unwrap();
        let calls = fake.calls.borrow().join("\n");
        assert!(calls.contains("touch /r/dev/null\nmount /dev/null /r/dev/null"), "{calls}");
        assert!(calls.contains("devpts newinstance,ptmxmode=0666,mode=0620\n"), "no gid=5 rootless: {calls}");
    }

    #[test]
    fn long_overlay_options_become_relative() {
        let lowers: Vec<String> =
            (0..80).map(|i| format!("/var/lib/rbuild/snapshots/overlay/sha256_{i:064}/fs")).collect();
        let opts = vec![
            format!("lowerdir={}", lowers.join(":")),
            "upperdir=/var/lib/rbuild/snapshots/overlay/k/fs".into(),
            "workdir=/var/lib/rbuild/snapshots/overlay/k/work".into(),
        ];
        let (short, dir) = relative_options(&opts).unwrap();
        assert_eq!(dir, Path::new("/var/lib/rbuild/snapshots/overlay"));
        assert!(short.starts_with("lowerdir=sha256_"));
        assert!(short.ends_with(",upperdir=k/fs,workdir=k/work"));
    }
}

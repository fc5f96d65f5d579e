//! Stage 3 output: the typed, serializable build graph the builder executes.
//!
//! Each step's `id` is blake3(parent id, canonical JSON of its op): the seed of its cache
//! key. Spans and descriptions sit beside the op and are not part of the identity, so
//! moving an instruction to another line does not bust the cache.

use crate::error::Span;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The whole build: the stages the target needs, in an order where every stage comes
/// after the stages it reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildGraph {
    /// Index (in the Dockerfile) of the stage whose result is the build's result.
    pub target: usize,
    /// Needed stages, dependencies first. Stages nothing needs are left out.
    pub stages: Vec<Stage>,
    /// Proxy variables (`HTTP_PROXY`...) from the build args: set for every Exec, not
    /// part of any identity and never written to the image, as in BuildKit.
    pub proxy_env: BTreeMap<String, String>,
}

/// One `FROM` and its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Position in the Dockerfile (what `COPY --from=N` means).
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The FROM line.
    pub span: Span,
    /// The platform the stage builds for (`linux/amd64`).
    pub platform: String,
    /// The stages this one reads from (base, `COPY --from`, `RUN --mount from=`).
    pub depends_on: BTreeSet<usize>,
    /// Steps; the first is always the stage's [`Op::Source`].
    pub steps: Vec<Step>,
    /// The image config after the last step (inherited values included).
    pub config: ImageConfig,
    /// The identity of the last step: what other stages depend on.
    pub id: String,
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// blake3 hex of (parent id, canonical op).
    pub id: String,
    /// The previous step's id (the base's identity for the Source step).
    pub parent: String,
    /// Instruction text for progress output (`RUN make`).
    pub description: String,
    /// Where the instruction is (the FROM line for ONBUILD triggers).
    pub span: Span,
    /// What to do.
    pub op: Op,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    /// Start from a base: scratch, an image or another stage.
    Source(SourceOp),
    /// Run a command (RUN).
    Exec(ExecOp),
    /// Copy files into the rootfs (COPY, ADD).
    Copy(CopyOp),
    /// Change the image config only (ENV, CMD, WORKDIR...).
    Config(ConfigChange),
}

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SourceOp {
    /// `FROM scratch`.
    Scratch,
    /// A registry image.
    Image {
        /// The expanded reference as written (`alpine:3.20`), not normalised.
        reference: String,
        /// Platform to pull.
        platform: String,
        /// Whether the resolver knew this image (its config was applied).
        resolved: bool,
        /// The manifest digest the resolver gave, pinning the identity.
        digest: Option<String>,
    },
    /// Another stage's result.
    Stage {
        /// Stage index.
        index: usize,
        /// That stage's final id.
        id: String,
    },
}

/// Where a COPY or mount reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SourceRef {
    /// The build context.
    Context,
    /// Another stage's rootfs.
    Stage {
        /// Stage index.
        index: usize,
        /// Its final id (so the step's identity changes when it does).
        id: String,
    },
    /// An image's rootfs.
    Image {
        /// Reference as written after expansion.
        reference: String,
    },
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    /// argv: shell form is already wrapped in the stage's SHELL.
    pub args: Vec<String>,
    /// `K=V`: the stage's ENV, then ARGs in scope that ENV does not override.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// User (`name`, `uid`, `uid:gid`...), empty for root.
    pub user: String,
    /// `--mount`s, plus the heredoc script mount for `RUN <<EOF` with a `#!` line.
    pub mounts: Vec<Mount>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: SecurityMode,
    /// Heredoc bodies of this RUN (already folded into `args`; kept for display and for
    /// the `#!` case where the executor writes `files[0]` into the pipes mount).
    pub heredocs: Vec<InlineFile>,
    /// `--device`s (CDI devices), in order. Left out of the identity when empty, so
    /// RUN steps without devices keep the ids they had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
}

/// One `RUN --device=name[,required]`: a CDI device (`vendor.com/class=name`, a whole
/// `vendor.com/class`, or a device class) to make available to the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The CDI name as written (after variable expansion).
    pub name: String,
    /// Fail the step when the device is not there (otherwise it is optional).
    pub required: bool,
}

/// RUN --network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The builder's default (usually sandboxed with network).
    #[default]
    Default,
    /// No network.
    None,
    /// Host network (needs entitlement).
    Host,
}

/// RUN --security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// Normal sandbox.
    #[default]
    Sandbox,
    /// Privileged (needs entitlement).
    Insecure,
}

/// RUN --mount types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountType {
    /// A directory from the context, a stage or an image.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or env var).
    Secret,
    /// An SSH agent socket.
    Ssh,
    /// rbuild-internal: the directory holding a `RUN <<EOF` `#!` script.
    Heredoc,
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Concurrent writers share it.
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One RUN mount, defaults already applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Type.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Absolute target path.
    pub target: String,
    /// Path within the source (bind/cache `source=`, secret/ssh unused).
    pub source: Option<String>,
    /// Where bind contents (or a cache's seed) come from; None for the others.
    pub from: Option<SourceRef>,
    /// Read-only.
    pub readonly: bool,
    /// Cache/secret/ssh id.
    pub id: Option<String>,
    /// Cache sharing.
    pub sharing: Option<Sharing>,
    /// File mode (octal in the Dockerfile).
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
    /// Fail if the secret/ssh is not provided.
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as this env var.
    pub env: Option<String>,
}

/// A file whose content is in the Dockerfile (heredoc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineFile {
    /// File name (the heredoc delimiter).
    pub name: String,
    /// Content (leading tabs already removed for `<<-`; expanded for COPY when the
    /// delimiter was unquoted).
    pub data: String,
    /// Mode for the created file, if not the default.
    pub mode: Option<u32>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOp {
    /// ADD (URLs, archives extracted, git) rather than COPY.
    pub add: bool,
    /// Where sources are read from.
    pub from: SourceRef,
    /// Source paths, expanded, relative to `from`'s root (or URLs for ADD).
    pub sources: Vec<String>,
    /// Heredoc sources: written as files named `name` into `dest`.
    pub inline_files: Vec<InlineFile>,
    /// Destination, absolute (resolved against WORKDIR); ends with `/` when it is a dir.
    pub dest: String,
    /// True when the destination must be a directory: it ends with `/` (or is `.`), or
    /// there are several sources.
    pub dest_is_dir: bool,
    /// `--chown` (user[:group], names resolved by the executor).
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// ADD `--unpack`: None = default (local archives unpacked, remote files not).
    pub unpack: Option<bool>,
}

/// A config-only step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ConfigChange {
    /// ENV: the expanded pairs.
    Env {
        /// Pairs, in order.
        pairs: Vec<(String, String)>,
    },
    /// LABEL.
    Label {
        /// Pairs, in order.
        pairs: Vec<(String, String)>,
    },
    /// WORKDIR: the absolute path; the executor creates it (owned by the stage user).
    Workdir {
        /// Absolute path.
        path: String,
        /// The user at that point, for ownership of the created directory.
        user: String,
    },
    /// USER.
    User {
        /// Expanded user.
        user: String,
    },
    /// CMD.
    Cmd {
        /// The new Cmd (shell form wrapped in SHELL).
        cmd: Vec<String>,
    },
    /// ENTRYPOINT; `cmd_reset` when it clears a Cmd inherited from the base (BuildKit
    /// drops the base's CMD unless this stage already set one).
    Entrypoint {
        /// The new Entrypoint.
        entrypoint: Vec<String>,
        /// Whether Cmd was reset to empty.
        cmd_reset: bool,
    },
    /// SHELL.
    Shell {
        /// The new shell.
        shell: Vec<String>,
    },
    /// EXPOSE.
    Expose {
        /// `port/proto`.
        ports: Vec<String>,
    },
    /// VOLUME.
    Volume {
        /// Paths.
        paths: Vec<String>,
    },
    /// STOPSIGNAL.
    StopSignal {
        /// Signal.
        signal: String,
    },
    /// HEALTHCHECK (None = NONE).
    Healthcheck {
        /// The check.
        check: Option<Healthcheck>,
    },
    /// ONBUILD: appended to the image's triggers.
    Onbuild {
        /// The trigger instruction text.
        trigger: String,
    },
    /// ARG in a stage: the names declared and the values they took (a build arg, the
    /// expanded default, the global value, or none). Changes no config; the image
    /// history records it, as BuildKit does (`ARG A=1`, an empty layer).
    Arg {
        /// (name, value), in order.
        pairs: Vec<(String, Option<String>)>,
    },
    /// MAINTAINER: sets the image author.
    Maintainer {
        /// Author.
        author: String,
    },
}

/// HEALTHCHECK as the image config stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Nanoseconds (0 = default).
    pub interval: i64,
    /// Nanoseconds.
    pub timeout: i64,
    /// Nanoseconds.
    pub start_period: i64,
    /// Nanoseconds.
    pub start_interval: i64,
    /// Retries (0 = default).
    pub retries: i64,
}

/// The image config as the stage leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// `K=V`.
    pub env: Vec<String>,
    /// Working directory (`/` when unset).
    pub working_dir: String,
    /// User.
    pub user: String,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// SHELL, if not the default `["/bin/sh", "-c"]`.
    pub shell: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports (`80/tcp`).
    pub exposed_ports: BTreeSet<String>,
    /// Volumes.
    pub volumes: BTreeSet<String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Healthcheck.
    pub healthcheck: Option<Healthcheck>,
    /// ONBUILD triggers for images built from this one.
    pub onbuild: Vec<String>,
    /// MAINTAINER.
    pub author: Option<String>,
}

impl BuildGraph {
    /// The graph as pretty JSON (what `rbuild build --dry-run` prints).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The stage with Dockerfile index `index`, if it is in the graph.
    pub fn stage(&self, index: usize) -> Option<&Stage> {
        self.stages.iter().find(|s| s.index == index)
    }
}

/// The identity of a step: blake3 over the parent id and the op's canonical JSON (struct
/// fields in declaration order, maps sorted: the same op always gives the same bytes).
pub fn step_id(parent: &str, op: &Op) -> String {
    // One buffer, hashed once: many tiny hasher updates cost more than the copy.
    let mut buf = Vec::with_capacity(parent.len() + 512);
    buf.extend_from_slice(parent.as_bytes());
    buf.push(0);
    // Serializing plain data into a Vec cannot fail.
    match op {
        // An ARG's values reach the steps that use them (RUN's env, expanded words), so
        // the ARG step itself is named by its ARG names alone: a new `--build-arg` value
        // does not re-run a COPY that never reads it (as BuildKit, where ARG is no op).
        Op::Config(ConfigChange::Arg { pairs }) => {
            let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            let _ = serde_json::to_writer(&mut buf, &("arg", names));
        }
        _ => {
            let _ = serde_json::to_writer(&mut buf, op);
        }
    }
    blake3::hash(&buf).to_hex().to_string()
}

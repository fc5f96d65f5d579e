//! What the caller gives the lowering: build args, target, platforms, and a resolver for
//! what only a registry knows (a base image's config).

use crate::dockerignore::Matcher;
use crate::graph::Healthcheck;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// An OCI platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`...
    pub arch: String,
    /// `v7`, `v8`... or empty.
    #[serde(default)]
    pub variant: String,
}

const KNOWN_OS: [&str; 15] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

impl Platform {
    /// Parse `os/arch[/variant]` strictly (no defaults), normalized.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let os = it.next().filter(|x| !x.is_empty())?;
        let arch = it.next().filter(|x| !x.is_empty())?;
        let variant = it.next().unwrap_or("");
        if it.next().is_some() {
            return None;
        }
        Some(Platform { os: os.into(), arch: arch.into(), variant: variant.into() }.normalized())
    }

    /// containerd's `platforms.Parse`: also `linux` (arch from `default`) and `arm64` (os
    /// from `default`); the result is normalized.
    pub fn parse_with_default(s: &str, default: &Platform) -> Option<Platform> {
        if s.contains('/') {
            return Platform::parse(s);
        }
        let lower = s.to_ascii_lowercase();
        if KNOWN_OS.contains(&lower.as_str()) {
            return Some(
                Platform { os: lower, arch: default.arch.clone(), variant: default.variant.clone() }.normalized(),
            );
        }
        let p = Platform { os: default.os.clone(), arch: lower, variant: String::new() }.normalized();
        KNOWN_ARCH.contains(&p.arch.as_str()).then_some(p)
    }

    /// containerd's `platforms.Normalize`: lowercase, arch aliases (`x86_64` -> `amd64`,
    /// `aarch64` -> `arm64`), default variants (`arm` -> `v7`, `arm64/v8` -> no variant).
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let mut variant = self.variant.to_ascii_lowercase();
        let arch = match self.arch.to_ascii_lowercase().as_str() {
            "i386" => "386".to_string(),
            "x86_64" | "x86-64" | "amd64" => {
                if variant == "v1" {
                    variant.clear();
                }
                "amd64".to_string()
            }
            "aarch64" | "arm64" => {
                if matches!(variant.as_str(), "8" | "v8" | "v8.0") {
                    variant.clear();
                }
                "arm64".to_string()
            }
            "armhf" => {
                variant = "v7".into();
                "arm".into()
            }
            "armel" => {
                variant = "v6".into();
                "arm".into()
            }
            "arm" => {
                variant = match variant.as_str() {
                    "" | "7" => "v7".into(),
                    "5" | "6" | "8" => format!("v{variant}"),
                    _ => variant,
                };
                "arm".into()
            }
            a => a.to_string(),
        };
        Platform { os, arch, variant }
    }
}

const KNOWN_ARCH: [&str; 14] = [
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64",
    "s390x", "wasm",
];

impl Default for Platform {
    fn default() -> Self {
        Platform { os: "linux".into(), arch: "amd64".into(), variant: String::new() }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.variant.is_empty() {
            write!(f, "{}/{}", self.os, self.arch)
        } else {
            write!(f, "{}/{}/{}", self.os, self.arch, self.variant)
        }
    }
}

/// Inputs to [`crate::lower`] besides the Dockerfile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LowerOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: build this stage (by name) instead of the last one.
    pub target: Option<String>,
    /// The platform being built for (TARGETPLATFORM...).
    pub target_platform: Platform,
    /// The platform doing the build (BUILDPLATFORM...).
    pub build_platform: Platform,
    /// The Dockerfile's name, for the caller's bookkeeping (progress output, BuildKit's
    /// `BUILDKIT_*` conventions); locations use the name given to [`crate::parse`].
    pub dockerfile_name: String,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: Platform::default(),
            build_platform: Platform::default(),
            dockerfile_name: "Dockerfile".into(),
        }
    }
}

/// A base image's config, as far as the Dockerfile's meaning depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaseImageInfo {
    /// The resolved manifest digest (pins the Source step's identity), if known.
    pub digest: Option<String>,
    /// The platform the image config says it is for (`linux/arm64`), if known: checked
    /// against the stage's platform (InvalidBaseImagePlatform).
    pub platform: Option<String>,
    /// `K=V`.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: String,
    /// USER.
    pub user: String,
    /// ONBUILD triggers, run right after FROM.
    pub onbuild: Vec<String>,
    /// ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// CMD.
    pub cmd: Option<Vec<String>>,
    /// SHELL.
    pub shell: Option<Vec<String>>,
    /// LABELs.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports.
    pub exposed_ports: BTreeSet<String>,
    /// Volumes.
    pub volumes: BTreeSet<String>,
    /// STOPSIGNAL.
    pub stop_signal: Option<String>,
    /// HEALTHCHECK.
    pub healthcheck: Option<Healthcheck>,
}

/// Answers what only the registry knows. The builder implements it.
pub trait ImageResolver {
    /// The config of `image_ref` for `platform` (`linux/amd64`); `Ok(None)` when
    /// unknown (offline), `Err` when resolution failed in a way that must stop the build.
    fn resolve(&self, image_ref: &str, platform: &str) -> Result<Option<BaseImageInfo>, String>;
}

/// A resolver that knows nothing (offline dry runs and `rbuild check`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl ImageResolver for NoResolver {
    fn resolve(&self, _: &str, _: &str) -> Result<Option<BaseImageInfo>, String> {
        Ok(None)
    }
}

/// A resolver backed by a map from image reference to info (tests, fixtures).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MapResolver(pub BTreeMap<String, BaseImageInfo>);

impl ImageResolver for MapResolver {
    fn resolve(&self, image_ref: &str, _: &str) -> Result<Option<BaseImageInfo>, String> {
        Ok(self.0.get(image_ref).cloned())
    }
}

/// What the lint pass needs beyond the Dockerfile.
#[derive(Debug, Clone, Copy, Default)]
pub struct LintInputs<'a> {
    /// The build context's `.dockerignore`, for CopyIgnoredFile.
    pub dockerignore: Option<&'a Matcher>,
}

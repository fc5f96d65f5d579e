//! `registries.toml`: which registries are insecure and which mirrors serve them.
//!
//! ```toml
//! # $RBUILD_REGISTRIES_CONF, else $XDG_CONFIG_HOME/rbuild/registries.toml
//! # (~/.config/rbuild/registries.toml), else /etc/rbuild/registries.toml
//! [[registry]]
//! prefix = "docker.io"              # a registry (host[:port]) or a registry/repository prefix
//! insecure = false                  # true: TLS without certificate checks, falling back to plain HTTP
//! mirrors = ["mirror.local:5000"]   # tried in order for pulls; the registry itself last
//!
//! [[registry]]
//! prefix = "registry.lan:5000"
//! insecure = true
//! ```
//!
//! The longest matching prefix wins (it matches on `/` boundaries). `localhost`,
//! `127.0.0.1` and `[::1]` (any port) always speak plain HTTP.

use crate::error::{Error, Result};
use rbuild_image::Reference;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// `host[:port]` or `host[:port]/repo/prefix`.
    pub prefix: String,
    /// TLS without certificate checks, then plain HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// Mirrors to try first for pulls (`host[:port]`).
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// The `[[registry]]` tables.
    #[serde(default, rename = "registry")]
    pub registries: Vec<RegistryEntry>,
}

impl RegistriesConfig {
    /// Parse the text of a registries.toml.
    pub fn parse(text: &str, path: &Path) -> Result<RegistriesConfig> {
        let c: RegistriesConfig =
            toml::from_str(text).map_err(|e| Error::Config { path: path.into(), reason: e.to_string() })?;
        for r in &c.registries {
            if r.prefix.is_empty() || r.prefix.contains("://") {
                return Err(Error::Config {
                    path: path.into(),
                    reason: format!("prefix {:?} must be host[:port][/repository-prefix], without a scheme", r.prefix),
                });
            }
        }
        Ok(c)
    }

    /// Where the file is looked for, first found wins.
    pub fn search_path() -> Vec<PathBuf> {
        if let Some(p) = std::env::var_os("RBUILD_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
            return vec![PathBuf::from(p)];
        }
        let mut v = Vec::new();
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
            v.push(PathBuf::from(x).join("rbuild/registries.toml"));
        } else if let Some(h) = std::env::var_os("HOME") {
            v.push(PathBuf::from(h).join(".config/rbuild/registries.toml"));
        }
        v.push(PathBuf::from("/etc/rbuild/registries.toml"));
        v
    }

    /// Load the first file of [`RegistriesConfig::search_path`]; empty when there is none.
    pub fn load_default() -> Result<RegistriesConfig> {
        for p in Self::search_path() {
            match std::fs::read_to_string(&p) {
                Ok(t) => return Self::parse(&t, &p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&p)(e)),
            }
        }
        Ok(RegistriesConfig::default())
    }

    /// The entry for a reference's name (`registry/repository`), longest prefix first.
    pub fn lookup(&self, name: &str) -> Option<&RegistryEntry> {
        self.registries
            .iter()
            .filter(|r| {
                let p = r.prefix.trim_end_matches('/');
                name == p || name.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|r| r.prefix.len())
    }

    /// Is this registry (as written in references) marked insecure?
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.lookup(registry).is_some_and(|r| r.insecure)
    }

    /// The mirrors for a reference, in order.
    pub fn mirrors(&self, r: &Reference) -> Vec<String> {
        self.lookup(&r.name()).map(|e| e.mirrors.clone()).unwrap_or_default()
    }
}

/// `localhost`, `127.0.0.1`, `[::1]`, with or without a port: spoken to in plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let h = if host.starts_with('[') {
        host.split(']').next().map(|s| &s[1..]).unwrap_or(host)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost" || h == "::1" || h.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let text = r#"
[[registry]]
prefix = "docker.io"
mirrors = ["mirror.local:5000"]

[[registry]]
prefix = "docker.io/team"
insecure = true

[[registry]]
prefix = "registry.lan:5000"
insecure = true
"#;
        let c = RegistriesConfig::parse(text, Path::new("r.toml")).unwrap();
        let alpine = Reference::parse("alpine").unwrap();
        assert_eq!(c.mirrors(&alpine), vec!["mirror.local:5000".to_string()]);
        assert!(c.lookup("docker.io/team/app").unwrap().insecure);
        assert!(!c.lookup("docker.io/teamx/app").unwrap().insecure);
        assert!(c.is_insecure("registry.lan:5000"));
        assert!(!c.is_insecure("registry.lan"));
        let e = RegistriesConfig::parse("[[registry]]\nprefix=\"https://x\"", Path::new("r.toml")).unwrap_err();
        assert!(e.to_string().contains("without a scheme"), "{e}");
        assert!(RegistriesConfig::parse("[[registry]]\nprefix=\"x\"\nbogus=1", Path::new("r.toml")).is_err());
    }

    #[test]
    fn loopback() {
        for h in ["localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "[fe80::1]:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}

//! A container's resource limits: what `--memory`, `--cpus`, `--pids-limit`, `--ulimit`…
//! ask for, typed, validated and serializable (part of a container's `config.json`).
//!
//! [`Limits::default`] limits nothing. Sizes follow docker's syntax (`16m`, `1g`, `512k`,
//! plain bytes; binary units), `--memory-swap -1` is unlimited swap, `--pids-limit` 0 or
//! -1 is no limit.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What a container may use. Every field `None` (or empty) is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// `--memory`: bytes of memory (docker's `HostConfig.Memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 unlimited swap (docker's
    /// `HostConfig.MemorySwap`). `None` with a memory limit: docker's default, twice the
    /// memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`: the soft limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    /// `--cpus`, in billionths of a CPU (docker's `HostConfig.NanoCpus`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<u64>,
    /// `--cpu-shares`: the relative weight (1024 is the default weight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`: the CPUs it may run on (`0-2,4`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`: the most processes (and threads) at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u64>,
    /// `--ulimit`: resource limits set with setrlimit before the command runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
}

/// One `--ulimit name=soft[:hard]`; -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// The resource, docker's name (`nofile`, `nproc`, `core`…).
    pub name: String,
    /// The soft limit (-1: unlimited).
    pub soft: i64,
    /// The hard limit (-1: unlimited).
    pub hard: i64,
}

/// docker's ulimit names and the RLIMIT_* resource each sets.
const ULIMITS: &[(&str, u32)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// The smallest memory limit docker accepts (6 MiB).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

impl Ulimit {
    /// Parse docker's `name=soft[:hard]` (hard defaults to soft).
    pub fn parse(s: &str) -> Result<Ulimit> {
        let bad = |why: String| Error::Limit(format!("--ulimit {s}: {why}"));
        let (name, values) = s.split_once('=').ok_or_else(|| bad("expected NAME=SOFT[:HARD]".into()))?;
        if Ulimit::resource_of(name).is_none() {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            return Err(bad(format!("unknown ulimit {name:?} (one of {})", names.join(", "))));
        }
        let num = |v: &str| -> Result<i64> {
            match v.parse::<i64>() {
                Ok(n) if n >= -1 => Ok(n),
                _ => Err(bad(format!("{v:?} is not a number (or -1 for unlimited)"))),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (num(s)?, num(h)?),
            None => {
                let v = num(values)?;
                (v, v)
            }
        };
        let big = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        if big(soft) > big(hard) {
            return Err(bad(format!("soft limit must be less than or equal to hard limit: {soft} > {hard}")));
        }
        Ok(Ulimit { name: name.to_string(), soft, hard })
    }

    /// The RLIMIT_* number of a docker ulimit name.
    pub fn resource_of(name: &str) -> Option<u32> {
        ULIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    /// This ulimit's RLIMIT_* number and its soft and hard values for setrlimit
    /// (`RLIM_INFINITY` for -1).
    pub fn rlimit(&self) -> Option<(u32, u64, u64)> {
        let v = |n: i64| if n < 0 { libc::RLIM_INFINITY } else { n as u64 };
        Some((Ulimit::resource_of(&self.name)?, v(self.soft), v(self.hard)))
    }
}

impl std::fmt::Display for Ulimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}:{}", self.name, self.soft, self.hard)
    }
}

/// Parse docker's size syntax (go-units' `RAMInBytes`): a number, maybe with a fraction,
/// then an optional `b`, `k`, `m`, `g`, `t` or `p` (binary units, any case, `i` and `b`
/// allowed after: `16m`, `16MB`, `16MiB`). `flag` names the flag in the error.
pub fn parse_size(flag: &str, s: &str) -> Result<u64> {
    let bad = || Error::Limit(format!("invalid argument {s:?} for {flag}: invalid size: '{s}'"));
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let mut unit = unit.trim_start().to_ascii_lowercase();
    if unit.ends_with('b') && unit.len() > 1 {
        unit.pop();
    }
    if unit.ends_with('i') && unit.len() > 1 {
        unit.pop();
    }
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let v = n * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_swap(s: &str) -> Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    let v = parse_size("--memory-swap", s)?;
    i64::try_from(v).map_err(|_| Error::Limit(format!("invalid argument {s:?} for --memory-swap: too large")))
}

/// `--cpus`: a decimal number of CPUs (`1.5`), as billionths; at most the CPUs online.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let bad = |why: &str| Error::Limit(format!("invalid argument {s:?} for --cpus: {why}"));
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad("not a number"));
    }
    if frac.len() > 9 {
        return Err(bad("too many decimal places"));
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad("too large"))? };
    let part: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad("not a number"))? };
    let nano = whole.checked_mul(1_000_000_000).and_then(|w| w.checked_add(part)).ok_or_else(|| bad("too large"))?;
    let online = online_cpus();
    if nano < 10_000_000 || nano > online * 1_000_000_000 {
        return Err(Error::Limit(format!(
            "range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available"
        )));
    }
    Ok(nano)
}

/// The number of CPUs online (at least 1).
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf has no side effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as u64 } else { 1 }
}

/// `--cpuset-cpus` / a cpuset list: `0`, `0-3`, `0,2-4`. Returns it unchanged when valid.
pub fn parse_cpuset(s: &str) -> Result<String> {
    let bad = || Error::Limit(format!("invalid value {s:?} for cpuset cpus: expected a list like 0-2,4"));
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    for part in t.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
    }
    Ok(t.to_string())
}

/// `--pids-limit`: a number; 0 or -1 is no limit (`None`).
pub fn parse_pids(s: &str) -> Result<Option<u64>> {
    match s.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(Some(n as u64)),
        Ok(_) => Ok(None),
        Err(_) => Err(Error::Limit(format!("invalid argument {s:?} for --pids-limit: not a number"))),
    }
}

impl Limits {
    /// Does this limit nothing?
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Does this need a cgroup (anything but ulimits)?
    pub fn needs_cgroup(&self) -> bool {
        Limits { ulimits: Vec::new(), ..self.clone() } != Limits::default()
    }

    /// docker's consistency rules between the flags: a memory limit of at least 6 MiB,
    /// swap not without memory and not below it, a reservation not above the limit.
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return Err(Error::Limit("Minimum memory limit allowed is 6MB".into()));
            }
        }
        match (self.memory, self.memory_swap) {
            (None, Some(s)) if s != -1 => {
                return Err(Error::Limit("You should always set the Memory limit when using Memoryswap limit".into()));
            }
            (Some(m), Some(s)) if s >= 0 && (s as u64) < m => {
                return Err(Error::Limit(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
            _ => {}
        }
        if let (Some(m), Some(r)) = (self.memory, self.memory_reservation) {
            if r > m {
                return Err(Error::Limit(
                    "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
                ));
            }
        }
        if self.cpu_shares == Some(1) {
            return Err(Error::Limit("--cpu-shares: the minimum allowed cpu-shares is 2".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.ulimits {
            if u.rlimit().is_none() {
                return Err(Error::Limit(format!("--ulimit: unknown ulimit {:?}", u.name)));
            }
            if !seen.insert(&u.name) {
                return Err(Error::Limit(format!("--ulimit {}: given twice", u.name)));
            }
        }
        Ok(())
    }

    /// The memory + swap limit to set: `memory_swap` when given (-1 unlimited), else
    /// docker's default of twice the memory limit; `None` without a memory limit.
    pub fn effective_swap(&self) -> Option<i64> {
        let m = self.memory?;
        Some(self.memory_swap.unwrap_or_else(|| (m as i64).saturating_mul(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "16m").unwrap(), 16 << 20);
        assert_eq!(parse_size("--memory", "16MB").unwrap(), 16 << 20);
        assert_eq!(parse_size("--memory", "16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("--memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "1.5k").unwrap(), 1536);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_size("--memory", "10b").unwrap(), 10);
        for bad in ["", "m", "16x", "-1", "1.2.3m", ".5m", "16mm"] {
            let e = parse_size("--memory", bad).unwrap_err().to_string();
            assert!(e.contains("--memory") && e.contains("invalid size"), "{bad}: {e}");
        }
        assert_eq!(parse_swap("-1").unwrap(), -1);
        assert_eq!(parse_swap("32m").unwrap(), 32 << 20);
    }

    #[test]
    fn cpus_pids_cpuset() {
        assert_eq!(parse_cpus("1").unwrap(), 1_000_000_000);
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus(".25").unwrap(), 250_000_000);
        assert!(parse_cpus("0").unwrap_err().to_string().contains("range of CPUs"));
        assert!(parse_cpus("100000").unwrap_err().to_string().contains("range of CPUs"));
        assert!(parse_cpus("x").is_err() && parse_cpus("-1").is_err() && parse_cpus("").is_err());
        assert_eq!(parse_pids("64").unwrap(), Some(64));
        assert_eq!(parse_pids("-1").unwrap(), None);
        assert_eq!(parse_pids("0").unwrap(), None);
        assert!(parse_pids("many").is_err());
        assert_eq!(parse_cpuset("0-1,3").unwrap(), "0-1,3");
        for bad in ["", "a", "2-1", "0,", "-1"] {
            assert!(parse_cpuset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(u.rlimit(), Some((libc::RLIMIT_NOFILE, 1024, 2048)));
        let u = Ulimit::parse("nproc=64").unwrap();
        assert_eq!((u.soft, u.hard), (64, 64));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!(u.rlimit().unwrap().1, libc::RLIM_INFINITY);
        assert!(Ulimit::parse("nofile=10:5").unwrap_err().to_string().contains("soft limit"));
        assert!(Ulimit::parse("files=10").unwrap_err().to_string().contains("unknown ulimit"));
        assert!(Ulimit::parse("nofile").is_err() && Ulimit::parse("nofile=x").is_err());
        assert_eq!(Ulimit::parse("nofile=1:2").unwrap().to_string(), "nofile=1:2");
    }

    #[test]
    fn validation_and_serde() {
        assert!(Limits::default().is_empty() && !Limits::default().needs_cgroup());
        assert_eq!(serde_json::to_string(&Limits::default()).unwrap(), "{}");
        let l: Limits = serde_json::from_str("{}").unwrap();
        assert_eq!(l, Limits::default());
        let l = Limits { memory: Some(16 << 20), ..Default::default() };
        assert!(l.validate().is_ok() && l.needs_cgroup());
        assert_eq!(l.effective_swap(), Some(32 << 20));
        let back: Limits = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        assert!(Limits { memory: Some(1 << 20), ..Default::default() }.validate().is_err());
        assert!(Limits { memory_swap: Some(1 << 30), ..Default::default() }.validate().is_err());
        assert!(Limits { memory_swap: Some(-1), ..Default::default() }.validate().is_ok());
        assert!(
            Limits { memory: Some(64 << 20), memory_swap: Some(32 << 20), ..Default::default() }.validate().is_err()
        );
        assert!(
            Limits { memory: Some(64 << 20), memory_reservation: Some(128 << 20), ..Default::default() }
                .validate()
                .is_err()
        );
        let u = Ulimit::parse("nofile=1").unwrap();
        let l = Limits { ulimits: vec![u.clone(), u], ..Default::default() };
        assert!(l.validate().unwrap_err().to_string().contains("twice"));
        assert!(!Limits { ulimits: vec![Ulimit::parse("nofile=1").unwrap()], ..Default::default() }.needs_cgroup());
    }
}

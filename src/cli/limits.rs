//! The resource-limit flags shared by `rbuild run`, `create` and `update`
//! (`#[command(flatten)]`), turned into a validated [`Limits`].

use rbuild_runtime::cgroup::{Limits, Ulimit, limits};

/// `--memory`, `--cpus`, `--pids-limit`, `--ulimit`… as docker spells them.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct LimitArgs {
    /// Memory limit (docker's sizes: 16m, 512k, 1g; at least 6m).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit (a size, or -1 for unlimited swap; default twice --memory).
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (a size, not above --memory).
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (a decimal: 1.5 is one and a half CPUs' time).
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight; 1024 is the default).
    #[arg(short = 'c', long = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Most processes at once (0 or -1: unlimited).
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// A ulimit for the command: NAME=SOFT[:HARD] (nofile, nproc, core, memlock, stack...; -1 unlimited).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
}

impl LimitArgs {
    /// No limit flag given?
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.memory_reservation.is_none()
            && self.cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpuset_cpus.is_none()
            && self.pids_limit.is_none()
            && self.ulimit.is_empty()
    }

    /// The limits these flags ask for (`run`, `create`), checked by docker's rules.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let mut l = Limits::default();
        self.apply_to(&mut l)?;
        Ok(l)
    }

    /// Change `l` by the flags given, leaving the rest (`update`); then check the whole.
    pub fn apply_to(&self, l: &mut Limits) -> anyhow::Result<()> {
        if let Some(m) = &self.memory {
            l.memory = Some(limits::parse_size("--memory", m)?);
        }
        if let Some(s) = &self.memory_swap {
            l.memory_swap = Some(limits::parse_swap(s)?);
        }
        if let Some(r) = &self.memory_reservation {
            l.memory_reservation = Some(limits::parse_size("--memory-reservation", r)?);
        }
        if let Some(c) = &self.cpus {
            l.nano_cpus = Some(limits::parse_cpus(c)?);
        }
        if let Some(s) = self.cpu_shares {
            // docker: 0 is the default weight.
            l.cpu_shares = (s != 0).then_some(s);
        }
        if let Some(c) = &self.cpuset_cpus {
            l.cpuset_cpus = Some(limits::parse_cpuset(c)?);
        }
        if let Some(p) = &self.pids_limit {
            l.pids_limit = limits::parse_pids(p)?;
        }
        for u in &self.ulimit {
            let u = Ulimit::parse(u)?;
            l.ulimits.retain(|o| o.name != u.name);
            l.ulimits.push(u);
        }
        l.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LimitArgs,
    }

    fn parse(argv: &[&str]) -> anyhow::Result<Limits> {
        use clap::Parser;
        let mut full = vec!["run"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full)?.args.limits()
    }

    #[test]
    fn flags_become_limits() {
        let l =
            parse(&["-m", "16m", "--memory-swap", "-1", "--cpus", "0.5", "-c", "512", "--pids-limit", "64"]).unwrap();
        assert_eq!(l.memory, Some(16 << 20));
        assert_eq!(l.memory_swap, Some(-1));
        assert_eq!(l.nano_cpus, Some(500_000_000));
        assert_eq!(l.cpu_shares, Some(512));
        assert_eq!(l.pids_limit, Some(64));
        let l = parse(&["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=10", "--pids-limit", "-1"]).unwrap();
        assert_eq!(l.ulimits.len(), 2);
        assert_eq!(l.pids_limit, None);
        assert!(parse(&[]).unwrap().is_empty());
        for (bad, want) in [
            (&["--memory", "16x"][..], "invalid size"),
            (&["--memory", "1m"][..], "Minimum memory limit"),
            (&["--memory-swap", "1g"][..], "Memory limit when using Memoryswap"),
            (&["--ulimit", "bogus=1"][..], "unknown ulimit"),
            (&["--cpus", "zero"][..], "--cpus"),
            (&["--cpuset-cpus", "a-b"][..], "cpuset"),
            (&["--pids-limit", "lots"][..], "--pids-limit"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn update_changes_only_the_flags_given() {
        use clap::Parser;
        let mut l = parse(&["-m", "64m", "--pids-limit", "10"]).unwrap();
        Cli::try_parse_from(["update", "--pids-limit", "20"]).unwrap().args.apply_to(&mut l).unwrap();
        assert_eq!((l.memory, l.pids_limit), (Some(64 << 20), Some(20)));
    }
}

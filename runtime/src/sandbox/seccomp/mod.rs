//! Seccomp: profiles in Docker's JSON format (`defaultAction`, `syscalls` with `names`,
//! `action`, `errnoRet`, `args`, `includes`/`excludes`), Docker's default profile
//! ([`Profile::docker_default`]), and their compilation to BPF with `seccompiler` for the
//! capabilities a container actually has ([`compile`]). The parent compiles (once per
//! profile and capability set); the init only installs the programs ([`install`]), last
//! thing before exec.
//!
//! A profile is one allow-list with per-rule actions; the kernel applies stacked filters
//! and keeps the most severe answer, so a profile becomes one filter that lets every call
//! some rule names through (else the default action) plus one filter per other action
//! (that action for its rules' calls, else allow).

mod default;
pub mod table;

use crate::error::{Error, Result};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A seccomp profile in Docker's (moby's) JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `SCMP_ACT_*` for calls no rule names.
    pub default_action: String,
    /// The errno of an `SCMP_ACT_ERRNO` default (EPERM when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_*` the profile is for (informational here: the filter is for the
    /// native architecture).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The calls.
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `SCMP_ACT_*`.
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO` (EPERM when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments, all of which must hold (several on one argument: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// The rule applies only when this matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Filter>,
    /// The rule does not apply when this matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Filter>,
}

/// A condition on one argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Argument number (0..=5).
    pub index: u8,
    /// The value compared with (for `SCMP_CMP_MASKED_EQ`: the mask).
    pub value: u64,
    /// `SCMP_CMP_MASKED_EQ`: the value the masked argument must equal.
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_NE`, `_LT`, `_LE`, `_EQ`, `_GE`, `_GT`, `_MASKED_EQ`.
    pub op: String,
}

/// When a rule applies (`includes`) or does not (`excludes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`…): includes need all of them, excludes any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Go architecture names (`amd64`, `arm64`, `x86`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// `major.minor`: the running kernel must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// Compiled filters, in the order they are installed: each a BPF program, one instruction
/// per `u64` (code | jt << 16 | jf << 24 | k << 32), ready for the init to install.
pub type Programs = Vec<Vec<u64>>;

impl Profile {
    /// Parse a profile file's bytes (`--security-opt seccomp=FILE`); `what` names it in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<Profile> {
        let p: Profile =
            serde_json::from_slice(bytes).map_err(|e| Error::Spec(format!("seccomp profile {what}: {e}")))?;
        action(&p.default_action, p.default_errno_ret)
            .map_err(|e| Error::Spec(format!("seccomp profile {what}: {e}")))?;
        for r in &p.syscalls {
            action(&r.action, r.errno_ret).map_err(|e| Error::Spec(format!("seccomp profile {what}: {e}")))?;
            for a in &r.args {
                op(&a.op, a.value, a.value_two)
                    .and_then(
                        |_| if a.index > 5 { Err(format!("argument index {} is over 5", a.index)) } else { Ok(()) },
                    )
                    .map_err(|e| Error::Spec(format!("seccomp profile {what}: {}: {e}", label(r))))?;
            }
        }
        Ok(p)
    }

    /// Docker's default profile (moby's `profiles/seccomp`): an allow-list returning EPERM
    /// for the rest, with its argument filters (clone without namespace flags, personality,
    /// socket without AF_VSOCK) and the calls each capability unlocks. io_uring is left out,
    /// as in moby 25 and later.
    pub fn docker_default() -> Profile {
        default::profile()
    }
}

/// The Go name of the architecture rbuild runs on, as profiles' `arches` say it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn kernel_at_least(want: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let Ok(u) = nix::sys::utsname::uname() else { return true };
    parse(&u.release().to_string_lossy()) >= parse(want)
}

impl Filter {
    fn arch_and_kernel(&self) -> (bool, bool) {
        let arch = self.arches.is_empty() || self.arches.iter().any(|a| a == go_arch());
        let kernel = self.min_kernel.as_deref().is_none_or(kernel_at_least);
        (arch, kernel)
    }

    /// For `includes`: everything listed holds.
    fn all(&self, caps: &[u32]) -> bool {
        let (arch, kernel) = self.arch_and_kernel();
        arch && kernel && self.caps.iter().all(|c| crate::sandbox::caps::number(c).is_some_and(|n| caps.contains(&n)))
    }

    /// For `excludes`: anything listed holds.
    fn any(&self, caps: &[u32]) -> bool {
        let arch = !self.arches.is_empty() && self.arches.iter().any(|a| a == go_arch());
        let kernel = self.min_kernel.as_deref().is_some_and(kernel_at_least);
        arch || kernel || self.caps.iter().any(|c| crate::sandbox::caps::number(c).is_some_and(|n| caps.contains(&n)))
    }
}

fn action(name: &str, errno: Option<u32>) -> std::result::Result<SeccompAction, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(0)),
        other => return Err(format!("unsupported action {other:?}")),
    })
}

fn op(name: &str, value: u64, value_two: u64) -> std::result::Result<(SeccompCmpOp, u64), String> {
    Ok(match name {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(value), value_two),
        other => return Err(format!("unsupported comparison {other:?}")),
    })
}

/// A rule's calls for messages: the first few names.
fn label(r: &Rule) -> String {
    let names: Vec<&str> = r.names.iter().chain(r.name.iter()).map(String::as_str).collect();
    let more = if names.len() > 3 { ",…" } else { "" };
    format!("{}{more}", names[..names.len().min(3)].join(","))
}

/// The conditions of a rule: one rule ANDing them, or, when one argument has several
/// (which cannot all hold as an AND), one rule per condition, as runc does.
fn rules_of(r: &Rule) -> Result<Vec<SeccompRule>> {
    if r.args.is_empty() {
        return Ok(Vec::new());
    }
    let mut conds = Vec::new();
    for a in &r.args {
        let (cmp, v) = op(&a.op, a.value, a.value_two).map_err(Error::Spec)?;
        conds.push(
            SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, cmp, v)
                .map_err(|e| Error::Spec(format!("seccomp rule {}: {e}", label(r))))?,
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let repeated = r.args.iter().any(|a| !seen.insert(a.index));
    let groups = if repeated { conds.into_iter().map(|c| vec![c]).collect() } else { vec![conds] };
    groups
        .into_iter()
        .map(|g| SeccompRule::new(g).map_err(|e| Error::Spec(format!("seccomp rule {}: {e}", label(r)))))
        .collect()
}

/// Per call: `None` = unconditional, `Some(rules)` = any of these.
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(chains: &mut Chains, nr: i64, rules: &[SeccompRule]) {
    let e = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (e.as_mut(), rules.is_empty()) {
        (None, _) => {}
        (Some(_), true) => *e = None,
        (Some(v), false) => v.extend(rules.iter().cloned()),
    }
}

fn program(chains: Chains, mismatch: SeccompAction, matched: SeccompAction) -> Result<Vec<u64>> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|_| Error::Spec(format!("seccomp: no filters for architecture {}", std::env::consts::ARCH)))?;
    let rules = chains.into_iter().map(|(nr, r)| (nr, r.unwrap_or_default())).collect();
    let f = SeccompFilter::new(rules, mismatch, matched, arch).map_err(|e| Error::Spec(format!("seccomp: {e}")))?;
    let bpf: seccompiler::BpfProgram = f.try_into().map_err(|e| Error::Spec(format!("seccomp: {e}")))?;
    Ok(bpf.iter().map(|i| i.code as u64 | (i.jt as u64) << 16 | (i.jf as u64) << 24 | (i.k as u64) << 32).collect())
}

/// Compile `profile` for a container with the capabilities `caps` (numbers): the rules
/// whose `includes`/`excludes` fit, with the calls this architecture has (others are
/// skipped, as libseccomp does).
pub fn compile(profile: &Profile, caps: &[u32]) -> Result<Programs> {
    let default = action(&profile.default_action, profile.default_errno_ret).map_err(Error::Spec)?;
    let mut all = Chains::new();
    let mut by_action: Vec<(SeccompAction, Chains)> = Vec::new();
    for r in &profile.syscalls {
        if r.includes.as_ref().is_some_and(|f| !f.all(caps)) || r.excludes.as_ref().is_some_and(|f| f.any(caps)) {
            continue;
        }
        let act = action(&r.action, r.errno_ret).map_err(Error::Spec)?;
        let rules = rules_of(r)?;
        let nrs: Vec<i64> = r.names.iter().chain(r.name.iter()).filter_map(|n| table::number(n)).collect();
        for &nr in &nrs {
            add(&mut all, nr, &rules);
        }
        if act == SeccompAction::Allow {
            continue;
        }
        let i = match by_action.iter().position(|(a, _)| *a == act) {
            Some(i) => i,
            None => {
                by_action.push((act, Chains::new()));
                by_action.len() - 1
            }
        };
        for &nr in &nrs {
            add(&mut by_action[i].1, nr, &rules);
        }
    }
    let mut out = Vec::new();
    if default != SeccompAction::Allow {
        out.push(program(all, default, SeccompAction::Allow)?);
    }
    for (act, chains) in by_action {
        out.push(program(chains, SeccompAction::Allow, act)?);
    }
    Ok(out)
}

/// Compile Docker's default profile for `caps`, once per capability set per process (a
/// build compiles it for its first RUN step only).
pub fn default_programs(caps: &[u32]) -> Result<Programs> {
    static CACHE: std::sync::Mutex<Vec<(Vec<u32>, Programs)>> = std::sync::Mutex::new(Vec::new());
    let mut key = caps.to_vec();
    key.sort_unstable();
    if let Some((_, p)) = CACHE.lock().unwrap().iter().find(|(k, _)| *k == key) {
        return Ok(p.clone());
    }
    let p = compile(&Profile::docker_default(), &key)?;
    CACHE.lock().unwrap().push((key, p.clone()));
    Ok(p)
}

/// Install `programs` on the calling thread, in order (the init's last step before exec;
/// needs CAP_SYS_ADMIN in the user namespace or no_new_privs).
pub fn install(programs: &Programs) -> std::io::Result<()> {
    for p in programs {
        let insns: Vec<libc::sock_filter> = p
            .iter()
            .map(|&w| libc::sock_filter {
                code: w as u16,
                jt: (w >> 16) as u8,
                jf: (w >> 24) as u8,
                k: (w >> 32) as u32,
            })
            .collect();
        let prog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_ptr() as *mut libc::sock_filter };
        // SAFETY: a valid program that outlives the call; the kernel copies it.
        let r = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_for_docker_caps_and_for_all() {
        let docker = crate::sandbox::caps::DEFAULT.to_vec();
        let p = compile(&Profile::docker_default(), &docker).unwrap();
        // The allow-list, then clone3's ENOSYS.
        assert_eq!(p.len(), 2, "{}", p.len());
        let all: Vec<u32> = (0..=40).collect();
        let p = compile(&Profile::docker_default(), &all).unwrap();
        // With CAP_SYS_ADMIN, clone3 is allowed: one filter.
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn the_default_leaves_out_what_docker_blocks() {
        let p = Profile::docker_default();
        let allowed = |name: &str, caps: &[u32]| {
            p.syscalls.iter().any(|r| {
                r.action == "SCMP_ACT_ALLOW"
                    && r.names.iter().any(|n| n == name)
                    && r.includes.as_ref().is_none_or(|f| f.all(caps))
                    && !r.excludes.as_ref().is_some_and(|f| f.any(caps))
            })
        };
        let docker = crate::sandbox::caps::DEFAULT;
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "mount",
            "setns",
        ] {
            assert!(!allowed(name, docker), "{name}");
        }
        for name in ["read", "execve", "clone", "personality", "socket", "chroot"] {
            assert!(allowed(name, docker), "{name}");
        }
        assert!(allowed("unshare", &[21]), "CAP_SYS_ADMIN unlocks unshare");
    }

    #[test]
    fn profiles_parse_in_dockers_format_and_bad_ones_name_the_problem() {
        let p = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"name":"personality","action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":4194304,"op":"SCMP_CMP_EQ"}]}]}"#,
            "test.json",
        )
        .unwrap();
        assert_eq!(p.syscalls[0].errno_ret, Some(13));
        let progs = compile(&p, &[]).unwrap();
        // Default allow: no base filter; one filter per errno.
        assert_eq!(progs.len(), 2);
        let e = Profile::from_json(br#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "x.json").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("SCMP_ACT_NOTIFY"), "{e}");
        let e = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}"#,
            "y.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("y.json") && e.contains("read") && e.contains("SCMP_CMP_LIKE"), "{e}");
    }

    #[test]
    fn names_map_to_this_architectures_numbers() {
        assert_eq!(table::number("read"), Some(libc::SYS_read));
        assert_eq!(table::number("keyctl"), Some(libc::SYS_keyctl));
        assert_eq!(table::number("chown32"), None);
        assert!(table::TABLE.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }
}

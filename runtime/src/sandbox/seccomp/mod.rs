//! Seccomp: profiles in Docker's JSON format (`defaultAction`, `syscalls` with `names`,
//! `action`, `errnoRet`, `args`, `includes`/`excludes`), Docker's default profile
//! ([`Profile::docker_default`]), and their compilation to BPF for the capabilities a
//! container actually has ([`compile`]). The parent compiles (once per profile and
//! capability set); the init only installs the program ([`install`]), last thing before
//! exec.
//!
//! A profile becomes one program ([`bpf`]): the architecture check, a binary search over
//! call numbers, and small blocks for the calls with argument conditions. Its answers are
//! those of the kernel's stacking of one filter per action (the allow-list with the default
//! action, then one filter per other action, the most severe answer winning), the layout
//! this module used to compile with `seccompiler`, which the tests keep as the reference.

mod bpf;
mod default;
#[cfg(test)]
mod equivalence;
pub mod table;

use crate::error::{Error, Result};
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

/// Compiled filters, in the order they are installed (one, or none for no filtering): each a BPF program, one instruction
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

/// A filter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Log,
    Trace(u32),
}

impl Action {
    /// The `SECCOMP_RET_*` value a filter returns for it.
    fn ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | (e & libc::SECCOMP_RET_DATA),
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Trace(d) => libc::SECCOMP_RET_TRACE | (d & libc::SECCOMP_RET_DATA),
        }
    }

    /// How the kernel ranks it among stacked filters' answers: lower wins.
    fn severity(self) -> i32 {
        (self.ret() & libc::SECCOMP_RET_ACTION_FULL) as i32
    }
}

fn action(name: &str, errno: Option<u32>) -> std::result::Result<Action, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(0)),
        other => return Err(format!("unsupported action {other:?}")),
    })
}

/// An unsigned 64-bit comparison of an argument with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `arg & mask == value & mask`.
    MaskedEq(u64),
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    index: u8,
    cmp: Cmp,
    value: u64,
}

fn op(name: &str, value: u64, value_two: u64) -> std::result::Result<(Cmp, u64), String> {
    Ok(match name {
        "SCMP_CMP_NE" => (Cmp::Ne, value),
        "SCMP_CMP_LT" => (Cmp::Lt, value),
        "SCMP_CMP_LE" => (Cmp::Le, value),
        "SCMP_CMP_EQ" => (Cmp::Eq, value),
        "SCMP_CMP_GE" => (Cmp::Ge, value),
        "SCMP_CMP_GT" => (Cmp::Gt, value),
        "SCMP_CMP_MASKED_EQ" => (Cmp::MaskedEq(value), value_two),
        other => return Err(format!("unsupported comparison {other:?}")),
    })
}

/// A rule's calls for messages: the first few names.
fn label(r: &Rule) -> String {
    let names: Vec<&str> = r.names.iter().chain(r.name.iter()).map(String::as_str).collect();
    let more = if names.len() > 3 { ",…" } else { "" };
    format!("{}{more}", names[..names.len().min(3)].join(","))
}

/// The conditions of a rule as groups any of which lets the call through, each holding
/// when all its conditions do: one group, or, when one argument has several conditions
/// (which cannot all hold as an AND), one group per condition, as runc does. No group: the
/// rule holds whatever the arguments.
fn groups_of(r: &Rule) -> Result<Vec<Vec<Cond>>> {
    let mut conds = Vec::new();
    for a in &r.args {
        let (cmp, value) = op(&a.op, a.value, a.value_two).map_err(Error::Spec)?;
        if a.index > 5 {
            return Err(Error::Spec(format!("seccomp rule {}: argument index {} is over 5", label(r), a.index)));
        }
        conds.push(Cond { index: a.index, cmp, value });
    }
    if conds.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = std::collections::BTreeSet::new();
    let repeated = r.args.iter().any(|a| !seen.insert(a.index));
    Ok(if repeated { conds.into_iter().map(|c| vec![c]).collect() } else { vec![conds] })
}

/// The audit architecture of the calls the filter answers.
fn audit_arch() -> Result<u32> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(0xc000_003e),
        "aarch64" => Ok(0xc000_00b7),
        "riscv64" => Ok(0xc000_00f3),
        other => Err(Error::Spec(format!("seccomp: no filters for architecture {other}"))),
    }
}

/// Per call, per action: `None` = unconditional, `Some(groups)` = when any holds.
type Calls = BTreeMap<u32, Vec<(Action, Option<Vec<Vec<Cond>>>)>>;

fn add(calls: &mut Calls, nr: u32, act: Action, groups: &[Vec<Cond>]) {
    let per = calls.entry(nr).or_default();
    let i = match per.iter().position(|(a, _)| *a == act) {
        Some(i) => i,
        None => {
            per.push((act, Some(Vec::new())));
            per.len() - 1
        }
    };
    match (&mut per[i].1, groups.is_empty()) {
        (None, _) => {}
        (e @ Some(_), true) => *e = None,
        (Some(v), false) => v.extend(groups.iter().cloned()),
    }
}

/// Compile `profile` for a container with the capabilities `caps` (numbers): the rules
/// whose `includes`/`excludes` fit, with the calls this architecture has (others are
/// skipped, as libseccomp does). No program when nothing is filtered.
///
/// A call's answer: the default when no rule naming it holds; else the most severe action
/// among the rules that hold (allow when all are allow ones), between two errnos (or
/// traces) the one of the action first named later in the profile, as the stacked filters
/// gave it.
pub fn compile(profile: &Profile, caps: &[u32]) -> Result<Programs> {
    let default = action(&profile.default_action, profile.default_errno_ret).map_err(Error::Spec)?;
    let mut calls = Calls::new();
    // Actions other than allow, in the order the profile first names them.
    let mut order: Vec<Action> = Vec::new();
    for r in &profile.syscalls {
        if r.includes.as_ref().is_some_and(|f| !f.all(caps)) || r.excludes.as_ref().is_some_and(|f| f.any(caps)) {
            continue;
        }
        let act = action(&r.action, r.errno_ret).map_err(Error::Spec)?;
        let groups = groups_of(r)?;
        if act != Action::Allow && !order.contains(&act) {
            order.push(act);
        }
        for nr in r.names.iter().chain(r.name.iter()).filter_map(|n| table::number(n)) {
            let Ok(nr) = u32::try_from(nr) else { continue };
            add(&mut calls, nr, act, &groups);
        }
    }
    if default == Action::Allow && order.is_empty() {
        return Ok(Vec::new());
    }
    let rank = |a: &Action| (a.severity(), std::cmp::Reverse(order.iter().position(|o| o == a)));
    let answers: BTreeMap<u32, bpf::Call> = calls
        .into_iter()
        .map(|(nr, mut per)| {
            per.sort_by_key(|(a, _)| rank(a));
            let mut checks = Vec::new();
            let mut fallback = default.ret();
            for (a, groups) in per {
                match groups {
                    None => {
                        fallback = a.ret();
                        break;
                    }
                    Some(g) => checks.push((a.ret(), g)),
                }
            }
            // A last check answering what the fallback answers anyway is no check.
            while checks.last().is_some_and(|(r, _)| *r == fallback) {
                checks.pop();
            }
            let call =
                if checks.is_empty() { bpf::Call::Ret(fallback) } else { bpf::Call::Checks { checks, fallback } };
            (nr, call)
        })
        .collect();
    let prog = bpf::program(&answers, default.ret(), audit_arch()?);
    if prog.len() > bpf::MAX_LEN {
        return Err(Error::Spec(format!(
            "seccomp: the profile makes a filter of {} instructions, over the kernel's {}",
            prog.len(),
            bpf::MAX_LEN
        )));
    }
    Ok(vec![prog])
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
        // One program, a few hundred instructions (it was 1537 in two programs as
        // seccompiler's linear chains).
        assert_eq!(p.len(), 1);
        assert!(p[0].len() < 400, "{}", p[0].len());
        let all: Vec<u32> = (0..=40).collect();
        let p = compile(&Profile::docker_default(), &all).unwrap();
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
        assert_eq!(progs.len(), 1);
        let allow_all = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
            "a.json",
        )
        .unwrap();
        assert!(compile(&allow_all, &[]).unwrap().is_empty(), "nothing to filter: no program");
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

//! The proof that the one-program filter answers as the stacked `seccompiler` filters did:
//! both run in a small BPF interpreter, for every call number and a set of argument
//! vectors built around the profile's own values, for Docker's default profile under
//! several capability sets and for sample profiles using every action and comparison.

use super::*;
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

// The reference: the compiler this module had before, one seccompiler filter per action.

fn old_action(name: &str, errno: Option<u32>) -> SeccompAction {
    match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(0)),
        other => panic!("{other}"),
    }
}

fn old_op(name: &str, value: u64, value_two: u64) -> (SeccompCmpOp, u64) {
    match name {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(value), value_two),
        other => panic!("{other}"),
    }
}

fn old_rules(r: &Rule) -> Vec<SeccompRule> {
    if r.args.is_empty() {
        return Vec::new();
    }
    let conds: Vec<SeccompCondition> = r
        .args
        .iter()
        .map(|a| {
            let (cmp, v) = old_op(&a.op, a.value, a.value_two);
            SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, cmp, v).unwrap()
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let repeated = r.args.iter().any(|a| !seen.insert(a.index));
    let groups = if repeated { conds.into_iter().map(|c| vec![c]).collect() } else { vec![conds] };
    groups.into_iter().map(|g| SeccompRule::new(g).unwrap()).collect()
}

type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn old_add(chains: &mut Chains, nr: i64, rules: &[SeccompRule]) {
    let e = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (e.as_mut(), rules.is_empty()) {
        (None, _) => {}
        (Some(_), true) => *e = None,
        (Some(v), false) => v.extend(rules.iter().cloned()),
    }
}

fn old_program(chains: Chains, mismatch: SeccompAction, matched: SeccompAction) -> Vec<u64> {
    let rules = chains.into_iter().map(|(nr, r)| (nr, r.unwrap_or_default())).collect();
    let f = SeccompFilter::new(rules, mismatch, matched, std::env::consts::ARCH.try_into().unwrap()).unwrap();
    let bpf: seccompiler::BpfProgram = f.try_into().unwrap();
    bpf.iter().map(|i| i.code as u64 | (i.jt as u64) << 16 | (i.jf as u64) << 24 | (i.k as u64) << 32).collect()
}

fn old_compile(profile: &Profile, caps: &[u32]) -> Programs {
    let default = old_action(&profile.default_action, profile.default_errno_ret);
    let mut all = Chains::new();
    let mut by_action: Vec<(SeccompAction, Chains)> = Vec::new();
    for r in &profile.syscalls {
        if r.includes.as_ref().is_some_and(|f| !f.all(caps)) || r.excludes.as_ref().is_some_and(|f| f.any(caps)) {
            continue;
        }
        let act = old_action(&r.action, r.errno_ret);
        let rules = old_rules(r);
        let nrs: Vec<i64> = r.names.iter().chain(r.name.iter()).filter_map(|n| table::number(n)).collect();
        for &nr in &nrs {
            old_add(&mut all, nr, &rules);
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
            old_add(&mut by_action[i].1, nr, &rules);
        }
    }
    let mut out = Vec::new();
    if default != SeccompAction::Allow {
        out.push(old_program(all, default, SeccompAction::Allow));
    }
    for (act, chains) in by_action {
        out.push(old_program(chains, SeccompAction::Allow, act));
    }
    out
}

// The interpreter.

const NATIVE: u32 = match std::env::consts::ARCH.as_bytes() {
    b"aarch64" => 0xc000_00b7,
    _ => 0xc000_003e,
};
const I386: u32 = 0x4000_0003;

#[derive(Debug, Clone, Copy)]
struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> u32 {
        match off {
            0 => self.nr,
            4 => self.arch,
            8 | 12 => 0,
            16..=63 if off % 4 == 0 => {
                let a = self.args[(off as usize - 16) / 8];
                if off % 8 == 0 { a as u32 } else { (a >> 32) as u32 }
            }
            _ => panic!("load of offset {off}"),
        }
    }
}

/// Checks the kernel makes of a program (`bpf_check_classic`, `seccomp_check_filter`).
fn check(prog: &[u64]) {
    assert!(!prog.is_empty() && prog.len() <= 4096, "{}", prog.len());
    for (pc, &w) in prog.iter().enumerate() {
        let (code, jt, jf, k) = (w as u16, (w >> 16) as u8 as usize, (w >> 24) as u8 as usize, (w >> 32) as u32);
        match code {
            0x20 => assert!(k < 64 && k % 4 == 0, "{pc}: load of {k}"),
            0x54 | 0x06 => {}
            0x05 => assert!(pc + 1 + (k as usize) < prog.len(), "{pc}: ja out of the program"),
            0x15 | 0x25 | 0x35 | 0x45 => assert!(pc + 1 + jt.max(jf) < prog.len(), "{pc}: jump out of the program"),
            other => panic!("{pc}: instruction {other:#x}"),
        }
    }
    assert_eq!(prog[prog.len() - 1] as u16, 0x06, "ends in ret");
}

/// What `prog` returns for `d`, and how many instructions it ran.
fn run(prog: &[u64], d: &Data) -> (u32, usize) {
    let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
    loop {
        let w = prog[pc];
        let (code, jt, jf, k) = (w as u16, (w >> 16) as u8 as usize, (w >> 24) as u8 as usize, (w >> 32) as u32);
        steps += 1;
        pc += 1;
        match code {
            0x20 => a = d.word(k),
            0x54 => a &= k,
            0x05 => pc += k as usize,
            0x06 => return (k, steps),
            _ => {
                let hit = match code {
                    0x15 => a == k,
                    0x25 => a > k,
                    0x35 => a >= k,
                    _ => a & k != 0,
                };
                pc += if hit { jt } else { jf };
            }
        }
    }
}

/// The kernel's answer for stacked filters: the newest first, a strictly more severe
/// answer replacing the one so far.
fn stacked(progs: &Programs, d: &Data) -> u32 {
    let sev = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for p in progs.iter().rev() {
        let r = run(p, d).0;
        if sev(r) < sev(ret) {
            ret = r;
        }
    }
    ret
}

/// Tiny deterministic generator for argument vectors.
fn lcg(s: &mut u64) -> u64 {
    *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *s ^ (*s >> 29)
}

/// Argument vectors for the calls `profile` has conditions on: each condition's value and
/// its neighbours (in both halves) in each argument alone, vectors meeting all of a rule's
/// conditions, and those with one argument changed.
fn vectors(profile: &Profile) -> Vec<[u64; 6]> {
    let mut vals = vec![0u64, 1, u64::MAX, 0xffff_ffff, 1 << 32, 0x8000_0000_0000_0000];
    for r in &profile.syscalls {
        for a in &r.args {
            for v in [a.value, a.value_two, a.value & a.value_two, a.value_two | !a.value] {
                vals.extend([v, v.wrapping_sub(1), v.wrapping_add(1), v ^ (1 << 32), v ^ 1, v & 0xffff_ffff]);
                vals.extend([v | 0xffff_ffff_0000_0000, v.wrapping_add(1 << 32), v.wrapping_sub(1 << 32)]);
            }
        }
    }
    vals.sort_unstable();
    vals.dedup();
    let mut out = Vec::new();
    for &v in &vals {
        out.push([v; 6]);
        for i in 0..6 {
            let mut a = [0; 6];
            a[i] = v;
            out.push(a);
        }
    }
    for r in &profile.syscalls {
        if r.args.is_empty() {
            continue;
        }
        let mut meet = [0u64; 6];
        for a in &r.args {
            meet[a.index as usize] = match a.op.as_str() {
                "SCMP_CMP_NE" | "SCMP_CMP_GT" => a.value.wrapping_add(1),
                "SCMP_CMP_LT" => a.value.wrapping_sub(1),
                "SCMP_CMP_MASKED_EQ" => a.value_two,
                _ => a.value,
            };
        }
        out.push(meet);
        for a in &r.args {
            for &v in &vals {
                let mut m = meet;
                m[a.index as usize] = v;
                out.push(m);
            }
        }
    }
    let mut s = 7;
    for _ in 0..64 {
        out.push(std::array::from_fn(|_| lcg(&mut s)));
    }
    out
}

/// Old and new answer alike for every call number (and some beyond the table, x32 ones,
/// calls from i386), with the full set of argument vectors for the calls with conditions.
fn assert_same(profile: &Profile, caps: &[u32], what: &str) {
    let old = old_compile(profile, caps);
    let new = compile(profile, caps).unwrap();
    assert!(new.len() <= 1, "{what}: {} programs", new.len());
    assert_eq!(old.is_empty(), new.is_empty(), "{what}: a filter in one only");
    new.iter().for_each(|p| check(p));
    let conditional: std::collections::BTreeSet<u32> = profile
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty())
        .flat_map(|r| r.names.iter().chain(r.name.iter()).filter_map(|n| table::number(n)))
        .map(|n| n as u32)
        .collect();
    let full = vectors(profile);
    let mut s = 11;
    let few: Vec<[u64; 6]> =
        vec![[0; 6], [u64::MAX; 6], std::array::from_fn(|_| lcg(&mut s)), std::array::from_fn(|_| lcg(&mut s))];
    let max = table::TABLE.iter().map(|t| t.1 as u32).max().unwrap_or(0);
    let extra = [max + 1, 1023, 0x4000_0000, 0x4000_0001, 0x4000_0000 | 59, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    for nr in (0..=max + 64).chain(extra) {
        let args = if conditional.contains(&nr) { &full } else { &few };
        for a in args {
            for arch in [NATIVE, I386] {
                let d = Data { nr, arch, args: *a };
                let (o, n) = (stacked(&old, &d), stacked(&new, &d));
                assert_eq!(o, n, "{what}: call {nr} arch {arch:#x} args {a:x?}: old {o:#x}, new {n:#x}");
            }
        }
    }
}

#[test]
fn the_default_profile_answers_as_before_for_every_call() {
    let p = Profile::docker_default();
    let all: Vec<u32> = (0..=40).collect();
    for (caps, what) in [
        (crate::sandbox::caps::DEFAULT.to_vec(), "docker's capabilities"),
        (Vec::new(), "no capabilities"),
        (all, "all capabilities"),
        (vec![21], "CAP_SYS_ADMIN"),
        (vec![18, 19, 2], "CAP_SYS_CHROOT, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH"),
        (vec![38, 39], "CAP_PERFMON, CAP_BPF"),
    ] {
        assert_same(&p, &caps, what);
    }
}

/// Every action, every comparison, both halves of 64-bit values, conditions repeated on one
/// argument, calls in several rules with different actions, unknown names, capability and
/// architecture filters.
const SAMPLE: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
  "syscalls": [
    {"names": ["read", "write", "close", "no_such_call", "mmap", "ioctl", "fcntl"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25, "args": [{"index": 1, "value": 21505, "op": "SCMP_CMP_EQ"}]},
    {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 1, "value": 21506, "op": "SCMP_CMP_LE"}, {"index": 0, "value": 2, "op": "SCMP_CMP_GT"}]},
    {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25, "args": [{"index": 1, "value": 4, "op": "SCMP_CMP_EQ"}]},
    {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 1, "value": 3, "op": "SCMP_CMP_GE"}]},
    {"names": ["mmap"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}, {"index": 3, "value": 32, "op": "SCMP_CMP_NE"}]},
    {"names": ["mprotect"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 4294967300, "op": "SCMP_CMP_LT"}, {"index": 2, "value": 8589934592, "op": "SCMP_CMP_GT"}]},
    {"names": ["openat"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 18446744069414584320, "valueTwo": 4294967296, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["openat"], "action": "SCMP_ACT_TRACE", "errnoRet": 7, "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]},
    {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
    {"names": ["getppid", "getpid"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}]},
    {"names": ["gettid"], "action": "SCMP_ACT_KILL"},
    {"names": ["gettid", "getuid"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["getgid"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["getegid"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["geteuid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "arm64"]}},
    {"names": ["getcwd"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65537, "args": [{"index": 1, "value": 15, "op": "SCMP_CMP_LE"}]},
    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2, "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}, {"index": 1, "value": 0, "op": "SCMP_CMP_GT"}]}
  ]
}"#;

#[test]
fn sample_profiles_answer_as_before_for_every_call() {
    let p = Profile::from_json(SAMPLE.as_bytes(), "sample").unwrap();
    for caps in [vec![], vec![21]] {
        assert_same(&p, &caps, "sample");
        // The same rules under other defaults: allow (only filters for the other
        // actions), kill, log, trace.
        for (default, errno) in [
            ("SCMP_ACT_ALLOW", None),
            ("SCMP_ACT_KILL_PROCESS", None),
            ("SCMP_ACT_LOG", None),
            ("SCMP_ACT_TRACE", Some(3)),
            ("SCMP_ACT_ERRNO", None),
        ] {
            let q = Profile { default_action: default.into(), default_errno_ret: errno, ..p.clone() };
            assert_same(&q, &caps, default);
        }
    }
    // Nothing but allow rules under an allow default: no filter in either.
    let q = Profile {
        default_action: "SCMP_ACT_ALLOW".into(),
        syscalls: p.syscalls.iter().filter(|r| r.action == "SCMP_ACT_ALLOW").cloned().collect(),
        ..p.clone()
    };
    assert_same(&q, &[], "allow only");
    // No rule at all; only rules for calls this architecture lacks.
    assert_same(&Profile { syscalls: Vec::new(), ..p.clone() }, &[], "no rules");
    let lacking = Rule { names: vec!["chown32".into()], action: "SCMP_ACT_ERRNO".into(), ..Default::default() };
    assert_same(
        &Profile { default_action: "SCMP_ACT_ALLOW".into(), syscalls: vec![lacking], ..p.clone() },
        &[],
        "unknown only",
    );
}

#[test]
fn a_call_is_answered_in_a_few_instructions() {
    let docker = crate::sandbox::caps::DEFAULT;
    let new = compile(&Profile::docker_default(), docker).unwrap();
    let old = old_compile(&Profile::docker_default(), docker);
    let max = table::TABLE.iter().map(|t| t.1 as u32).max().unwrap();
    let steps = |progs: &Programs| {
        let s: Vec<usize> = (0..=max)
            .map(|nr| progs.iter().map(|p| run(p, &Data { nr, arch: NATIVE, args: [0; 6] }).1).sum())
            .collect();
        (s.iter().sum::<usize>() as f64 / s.len() as f64, *s.iter().max().unwrap())
    };
    let ((new_mean, new_max), (old_mean, old_max)) = (steps(&new), steps(&old));
    println!(
        "instructions run a call: one program of {}: mean {new_mean:.1}, max {new_max}; \
         seccompiler's {} programs of {}: mean {old_mean:.1}, max {old_max}",
        new[0].len(),
        old.len(),
        old.iter().map(Vec::len).sum::<usize>()
    );
    // Arch check, a search of depth about 7, a block of argument checks (clone,
    // personality's five values).
    assert!(new_max <= 40, "{new_max}");
}

/// Install time of the old and the new filter, each in a fresh child (a filter cannot be
/// removed), interleaved: `cargo test -p rbuild-runtime --lib seccomp::equivalence::install_cost
/// -- --ignored --nocapture` (bench/sandbox/run.sh runs it). Prints; asserts nothing.
#[test]
#[ignore]
fn install_cost() {
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let docker = crate::sandbox::caps::DEFAULT;
    let raw = |progs: &Programs| -> Vec<Vec<libc::sock_filter>> {
        progs
            .iter()
            .map(|p| {
                p.iter()
                    .map(|&w| libc::sock_filter {
                        code: w as u16,
                        jt: (w >> 16) as u8,
                        jf: (w >> 24) as u8,
                        k: (w >> 32) as u32,
                    })
                    .collect()
            })
            .collect()
    };
    let time = |f: &dyn Fn()| {
        let mut v: Vec<f64> = (0..50)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let p = Profile::docker_default();
    let (c_old, c_new) = (
        time(&|| drop(old_compile(&Profile::docker_default(), docker))),
        time(&|| drop(compile(&Profile::docker_default(), docker).unwrap())),
    );
    let old = raw(&old_compile(&p, docker));
    let new = raw(&compile(&p, docker).unwrap());
    // Time one install in a child: only system calls between fork and _exit.
    let once = |progs: &[Vec<libc::sock_filter>]| -> f64 {
        let fprogs: Vec<libc::sock_fprog> = progs
            .iter()
            .map(|p| libc::sock_fprog { len: p.len() as u16, filter: p.as_ptr() as *mut libc::sock_filter })
            .collect();
        let mut fds = [0; 2];
        // SAFETY: plain system calls; the child makes nothing but system calls and exits.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let mut t0: libc::timespec = std::mem::zeroed();
                let mut t1: libc::timespec = std::mem::zeroed();
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0);
                for f in &fprogs {
                    if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, f as *const _) != 0 {
                        libc::_exit(1);
                    }
                }
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t1);
                let ns: i64 = (t1.tv_sec - t0.tv_sec) * 1_000_000_000 + (t1.tv_nsec - t0.tv_nsec);
                libc::write(fds[1], &ns as *const i64 as *const libc::c_void, 8);
                libc::_exit(0);
            }
            libc::close(fds[1]);
            let mut ns = 0i64;
            assert_eq!(libc::read(fds[0], &mut ns as *mut i64 as *mut libc::c_void, 8), 8, "child failed");
            libc::close(fds[0]);
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            ns as f64 / 1e6
        }
    };
    let (mut o, mut w) = (Vec::new(), Vec::new());
    for _ in 0..n {
        o.push(once(&old));
        w.push(once(&new));
    }
    o.sort_by(f64::total_cmp);
    w.sort_by(f64::total_cmp);
    println!(
        "seccomp install, median of {n}: seccompiler {} programs / {} instructions {:.3} ms, \
         one program / {} instructions {:.3} ms; compile (this build's profile) seccompiler {c_old:.3} ms, new {c_new:.3} ms",
        old.len(),
        old.iter().map(Vec::len).sum::<usize>(),
        o[n / 2],
        new[0].len(),
        w[n / 2],
    );
}

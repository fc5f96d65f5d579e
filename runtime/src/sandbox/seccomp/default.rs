//! Docker's default seccomp profile, as rules: which calls it allows unconditionally, which
//! only with argument checks, and which each capability unlocks (the facts of moby's
//! `profiles/seccomp/default.json`, io_uring left out as moby 25 does; a few calls added
//! since then: fchmodat2, map_shadow_stack, futex_wait/wake/requeue).

use super::{Arg, Filter, Profile, Rule};

/// Allowed for everyone.
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid
getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod
mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd
msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll
ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64
recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev";

/// Calls each capability unlocks (`includes.caps`).
const BY_CAP: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr \
         move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog \
         umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Calls for some architectures only (`includes.arches`, Go names).
const BY_ARCH: &[(&str, &str)] = &[
    ("arm arm64", "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    ("amd64 x32", "arch_prctl"),
    ("amd64 x32 x86", "modify_ldt"),
    ("riscv64", "riscv_flush_icache"),
];

/// The namespace flags clone may not be given without CAP_SYS_ADMIN.
const CLONE_NS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn names(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn allow(n: &str) -> Rule {
    Rule { names: names(n), action: "SCMP_ACT_ALLOW".into(), ..Default::default() }
}

pub(super) fn profile() -> Profile {
    let mut rules = vec![allow(ALLOWED)];
    // ptrace and friends are safe from 4.8 on (seccomp is checked after ptrace changes).
    rules.push(Rule {
        includes: Some(Filter { min_kernel: Some("4.8".into()), ..Default::default() }),
        ..allow("process_vm_readv process_vm_writev ptrace")
    });
    rules.push(Rule {
        args: vec![Arg { index: 0, value: libc::AF_VSOCK as u64, value_two: 0, op: "SCMP_CMP_NE".into() }],
        ..allow("socket")
    });
    // personality: only the harmless personas (not READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE…).
    for v in [0u64, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(Rule {
            args: vec![Arg { index: 0, value: v, value_two: 0, op: "SCMP_CMP_EQ".into() }],
            ..allow("personality")
        });
    }
    for (arches, calls) in BY_ARCH {
        rules.push(Rule { includes: Some(Filter { arches: names(arches), ..Default::default() }), ..allow(calls) });
    }
    for (cap, calls) in BY_CAP {
        rules.push(Rule {
            includes: Some(Filter { caps: vec![cap.to_string()], ..Default::default() }),
            ..allow(calls)
        });
    }
    let sys_admin = || Some(Filter { caps: vec!["CAP_SYS_ADMIN".into()], ..Default::default() });
    // clone without namespace flags (s390 has the flags in the second argument).
    rules.push(Rule {
        args: vec![Arg { index: 0, value: CLONE_NS, value_two: 0, op: "SCMP_CMP_MASKED_EQ".into() }],
        excludes: Some(Filter { caps: vec!["CAP_SYS_ADMIN".into()], arches: names("s390 s390x"), min_kernel: None }),
        ..allow("clone")
    });
    rules.push(Rule {
        args: vec![Arg { index: 1, value: CLONE_NS, value_two: 0, op: "SCMP_CMP_MASKED_EQ".into() }],
        includes: Some(Filter { arches: names("s390 s390x"), ..Default::default() }),
        excludes: sys_admin(),
        ..allow("clone")
    });
    // clone3's flags are in memory where no filter can look: ENOSYS makes libc fall back
    // to clone.
    rules.push(Rule {
        names: names("clone3"),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: sys_admin(),
        ..Default::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        architectures: names("SCMP_ARCH_X86_64 SCMP_ARCH_X86 SCMP_ARCH_X32 SCMP_ARCH_AARCH64 SCMP_ARCH_ARM"),
        syscalls: rules,
    }
}

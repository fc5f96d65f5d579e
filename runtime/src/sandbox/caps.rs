//! Capabilities by name and number, Docker's default set, and what `--cap-add` /
//! `--cap-drop` make of it.

use crate::error::{Error, Result};

/// Every capability the kernel headers know, by number.
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// CAP_NET_RAW.
pub const NET_RAW: u32 = 13;
/// CAP_NET_ADMIN.
pub const NET_ADMIN: u32 = 12;
/// CAP_MKNOD.
pub const MKNOD: u32 = 27;

/// Docker's default capability set.
pub const DEFAULT: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

/// The number of a capability named `CAP_X`, `X` or `x`.
pub fn number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// `CAP_X` for a number.
pub fn name(n: u32) -> String {
    NAMES.get(n as usize).map(|s| format!("CAP_{s}")).unwrap_or_else(|| format!("CAP_{n}"))
}

/// Every capability (`--cap-add ALL`, `RUN --security=insecure`).
pub fn all() -> Vec<u32> {
    (0..NAMES.len() as u32).collect()
}

/// Docker's set, changed by `--cap-drop` then `--cap-add` (names, `ALL` allowed in both),
/// without NET_RAW on the host's network unless added: a raw socket there sees the host's
/// traffic. The result is sorted.
pub fn effective(add: &[String], drop: &[String], host_network: bool) -> Result<Vec<u32>> {
    let parse = |list: &[String], flag: &str| -> Result<(bool, Vec<u32>)> {
        let mut all = false;
        let mut out = Vec::new();
        for n in list {
            if n.eq_ignore_ascii_case("ALL") {
                all = true;
            } else {
                out.push(number(n).ok_or_else(|| Error::Spec(format!("{flag} {n}: no such capability")))?);
            }
        }
        Ok((all, out))
    };
    let (add_all, add) = parse(add, "--cap-add")?;
    let (drop_all, drop) = parse(drop, "--cap-drop")?;
    let mut caps: Vec<u32> = if drop_all { Vec::new() } else { DEFAULT.to_vec() };
    if host_network {
        caps.retain(|c| *c != NET_RAW);
    }
    caps.retain(|c| !drop.contains(c));
    if add_all {
        caps = all();
    }
    for c in add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps.sort_unstable();
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("net_raw"), Some(NET_RAW));
        assert_eq!(number("MKNOD"), Some(MKNOD));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(name(12), "CAP_NET_ADMIN");
    }

    #[test]
    fn add_and_drop() {
        let host = effective(&[], &[], true).unwrap();
        assert!(!host.contains(&NET_RAW) && host.contains(&MKNOD));
        assert!(effective(&[], &[], false).unwrap().contains(&NET_RAW));
        let c = effective(&["NET_RAW".into(), "CAP_NET_ADMIN".into()], &["mknod".into()], true).unwrap();
        assert!(c.contains(&NET_RAW) && c.contains(&NET_ADMIN) && !c.contains(&MKNOD));
        assert_eq!(effective(&["CHOWN".into()], &["ALL".into()], false).unwrap(), vec![0]);
        assert_eq!(effective(&["ALL".into()], &[], true).unwrap(), all());
        let e = effective(&["FLY".into()], &[], true).unwrap_err().to_string();
        assert!(e.contains("--cap-add FLY"), "{e}");
    }
}

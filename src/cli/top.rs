//! `rbuild top`: the processes of a running container, like `docker top`: the host's `ps`
//! (with the options given, `-ef` by default), keeping the rows of processes in the
//! container's pid namespace.

use rbuild_runtime::container::Containers;
use std::os::unix::fs::MetadataExt;

/// Flags of `rbuild top`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container: name, ID or ID prefix.
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps (default: -ef).
    #[arg(value_name = "PS_OPTIONS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// The (device, inode) of a process's pid namespace.
fn pid_ns(pid: i32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Every host pid in the pid namespace of `pid1`.
pub fn pids_in_namespace_of(pid1: i32) -> Vec<i32> {
    let Some(ns) = pid_ns(pid1) else { return Vec::new() };
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| pid_ns(*p) == Some(ns))
        .collect();
    out.sort_unstable();
    out
}

/// Keep the header and the rows of `ps` output whose PID column is in `pids`, as
/// tab-separated cells (the last column, the command, keeps its spaces).
pub fn filter_ps(output: &str, pids: &[i32]) -> anyhow::Result<Vec<String>> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| anyhow::anyhow!("Couldn't find PID field in ps output (ps options must keep the PID column)"))?;
    let mut out = vec![titles.join("\t")];
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[col].parse::<i32>() else { continue };
        if pids.contains(&pid) {
            let mut cells: Vec<String> = fields[..titles.len() - 1].iter().map(|s| s.to_string()).collect();
            cells.push(fields[titles.len() - 1..].join(" "));
            out.push(cells.join("\t"));
        }
    }
    Ok(out)
}

/// Run `rbuild top`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let c = Containers::open(&g.root).resolve(&args.container)?;
    let st = c.checked_state()?;
    if !st.status.is_active() || st.pid <= 0 {
        anyhow::bail!("container {} is not running", c.id);
    }
    let pids = pids_in_namespace_of(st.pid);
    if pids.is_empty() {
        anyhow::bail!("container {} is not running (its pid {} is gone)", c.id, st.pid);
    }
    let ps_args = if args.ps_args.is_empty() { vec!["-ef".to_string()] } else { args.ps_args.clone() };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| anyhow::anyhow!("rbuild top runs the host's ps (procps): {e}"))?;
    if !out.status.success() {
        anyhow::bail!("ps {}: {}", ps_args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    let rows = filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?;
    println!("{}", rbuild_runtime::container::format::tabwrite_min(&rows.join("\n"), 20));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_container_rows_of_ps_output() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                  root           1       0  0 13:33 ?        00:00:01 /sbin/init\n\
                  root         500       1  0 13:34 ?        00:00:00 httpd -f -p 80\n\
                  root         501     500  0 13:34 ?        00:00:00 sh\n";
        let rows = filter_ps(ps, &[500, 501]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], "UID\tPID\tPPID\tC\tSTIME\tTTY\tTIME\tCMD");
        assert_eq!(rows[1], "root\t500\t1\t0\t13:34\t?\t00:00:00\thttpd -f -p 80");
        let e = filter_ps("USER COMMAND\nroot x\n", &[1]).unwrap_err().to_string();
        assert!(e.contains("PID"), "{e}");
    }

    #[test]
    fn finds_processes_in_its_own_pid_namespace() {
        let me = std::process::id() as i32;
        assert!(pids_in_namespace_of(me).contains(&me));
        assert!(pids_in_namespace_of(-5).is_empty());
    }
}

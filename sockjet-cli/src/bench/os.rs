//! What `bench` asks of the operating system: more file descriptors, its own CPU time,
//! and the memory and CPU time of the server it measures.
//!
//! The system calls go through `nix`'s safe wrappers, so the crate has no `unsafe`.

use std::{io, time::Duration};

/// The open-file limit of this process.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) struct FileLimit {
    /// The limit in force.
    pub(crate) soft: u64,
    /// The most an unprivileged process can raise it to.
    pub(crate) hard: u64,
}

/// Raises the soft limit on open files to the hard limit (each connection is one file
/// descriptor, and the usual soft limit of 1024 is far below what a load test needs), and
/// returns the limit then in force.
///
/// # Errors
///
/// If the limit cannot be read; failing to raise it just leaves it as it was.
#[cfg(unix)]
pub(crate) fn raise_open_file_limit() -> io::Result<FileLimit> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (mut soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        soft = hard;
    }
    Ok(FileLimit { soft, hard })
}

/// Elsewhere there is no limit to raise that `bench` knows of.
#[cfg(not(unix))]
pub(crate) fn raise_open_file_limit() -> io::Result<FileLimit> {
    Ok(FileLimit {
        soft: u64::MAX,
        hard: u64::MAX,
    })
}

/// CPU time this process has used so far.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CpuTime {
    /// Time running its own code.
    pub(crate) user: Duration,
    /// Time in the kernel on its behalf (system calls: here, mostly socket I/O).
    pub(crate) system: Duration,
}

impl CpuTime {
    /// This and `other` together (of two processes).
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }

    /// The CPU time used between `earlier` and this.
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time of this process (all threads), or `None` where it cannot be had.
#[cfg(unix)]
pub(crate) fn cpu_time() -> Option<CpuTime> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let duration = |time: nix::sys::time::TimeVal| {
        Duration::from_secs(time.tv_sec().max(0) as u64)
            + Duration::from_micros(time.tv_usec().max(0) as u64)
    };
    Some(CpuTime {
        user: duration(usage.user_time()),
        system: duration(usage.system_time()),
    })
}

/// Elsewhere CPU time is not reported.
#[cfg(not(unix))]
pub(crate) fn cpu_time() -> Option<CpuTime> {
    None
}

/// The resident memory of process `pid`, in bytes: `VmRSS` in `/proc/PID/status` (Linux).
///
/// # Errors
///
/// If the file cannot be read (no such process, not Linux) or has no `VmRSS` line (a
/// kernel thread, or a zombie).
pub(crate) fn resident_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// The resident memory of process `pid` and all its descendants, in bytes: the sum of
/// their `VmRSS`. A server may be a supervisor whose worker processes hold the
/// connections; one without children reads as [`resident_bytes`]. Pages shared between
/// the processes (the executable's, say) count once per process, which a difference of
/// two readings (growth per connection) cancels out.
///
/// # Errors
///
/// If `pid`'s own memory cannot be read (see [`resident_bytes`]); a descendant that exits
/// meanwhile just counts for nothing.
pub(crate) fn tree_resident_bytes(pid: u32) -> io::Result<u64> {
    let own = resident_bytes(pid)?;
    let descendants = descendants_in(&process_parents(), pid);
    Ok(descendants
        .into_iter()
        .filter_map(|child| resident_bytes(child).ok())
        .fold(own, u64::saturating_add))
}

/// Every process and its parent, from `/proc/*/stat` (Linux; empty elsewhere). Scanning
/// works on every kernel, where `/proc/PID/task/TID/children` needs
/// `CONFIG_PROC_CHILDREN`; a process that exits during the scan is skipped.
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat_ppid(&stat)?))
        })
        .collect()
}

/// The descendants of `root` (children, their children, ...) in a list of
/// `(pid, parent pid)`, without `root` itself.
fn descendants_in(parents: &[(u32, u32)], root: u32) -> Vec<u32> {
    let mut found = vec![root];
    // Each round looks at the processes found in the previous one; a pid is taken once,
    // so even a list with a cycle in it (pids reused while scanning) ends.
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        next += 1;
        for &(pid, ppid) in parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
    }
    found.remove(0);
    found
}

/// The parent pid (field 4) of a `/proc/PID/stat` line.
fn parse_stat_ppid(stat: &str) -> Option<u32> {
    // As in `parse_stat_cpu_ticks`: the fields after the command name's last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of process `pid` (all its threads, user plus system), in clock ticks:
/// `utime` + `stime` in `/proc/PID/stat` (Linux). See [`clock_ticks_per_second`].
///
/// # Errors
///
/// If the file cannot be read (no such process, not Linux) or cannot be parsed.
pub(crate) fn process_cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu_ticks(&stat).ok_or_else(|| io::Error::other("cannot parse /proc/PID/stat"))
}

/// `utime` + `stime` (fields 14 and 15) of a `/proc/PID/stat` line.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Field 2, the command name in parentheses, may hold spaces and parentheses itself:
    // the fields that follow start after its last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Field 3 (state) is the first after the name, so utime (14) is the 12th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, the unit of [`process_cpu_ticks`]: `sysconf(_SC_CLK_TCK)`.
#[cfg(unix)]
pub(crate) fn clock_ticks_per_second() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        // USER_HZ is 100 on every Linux architecture in use.
        _ => 100,
    }
}

/// Elsewhere: USER_HZ as on Linux (there is no `/proc/PID/stat` to read anyway).
#[cfg(not(unix))]
pub(crate) fn clock_ticks_per_second() -> u64 {
    100
}

/// The `VmRSS` of a `/proc/PID/status` text, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    // The kernel always writes kB (KiB).
    match fields.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tsockjet\nVmPeak:\t  100 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5 << 20));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn stat_cpu_ticks_are_utime_plus_stime() {
        // A command name with a space and a parenthesis, as `(my (app)`.
        let stat = "4242 (my (app) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 31 0 0 20 0 2 0 12345 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(281));
        assert_eq!(parse_stat_cpu_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no name"), None);
    }

    #[test]
    fn stat_ppid_is_field_four() {
        let stat = "4242 (my (app) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31";
        assert_eq!(parse_stat_ppid(stat), Some(17));
        assert_eq!(parse_stat_ppid("4242 (short) S"), None);
    }

    #[test]
    fn descendants_are_found_at_every_depth() {
        // 1 -> 10 -> (11, 12), 12 -> 13; 20 is elsewhere; 30 and 31 parent each other.
        let parents = [
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 12),
            (20, 1),
            (30, 31),
            (31, 30),
        ];
        assert_eq!(descendants_in(&parents, 10), vec![11, 12, 13]);
        assert_eq!(descendants_in(&parents, 13), Vec::<u32>::new());
        assert_eq!(descendants_in(&parents, 30), vec![31]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_trees_memory_sums_its_processes() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let child_pid = child.id();
        let own = std::process::id();
        // A leaf reads as itself. The child may still be loading (its memory growing)
        // right after the spawn: read until two readings agree, a bounded number of times.
        let mut leaf = None;
        for _ in 0..50 {
            let (single, tree) = (resident_bytes(child_pid), tree_resident_bytes(child_pid));
            if let (Ok(single), Ok(tree)) = (single, tree)
                && single == tree
            {
                leaf = Some(single);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let descendants = descendants_in(&process_parents(), own);
        let own_rss = resident_bytes(own).unwrap();
        let tree = tree_resident_bytes(own).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let child_rss = leaf.expect("the child's memory reads the same alone and as a tree");
        assert!(child_rss > 0);
        assert!(descendants.contains(&child_pid), "{descendants:?}");
        // The test process's tree holds its own memory and the child's (other tests'
        // allocations may come and go meanwhile, hence the slack).
        assert!(
            tree >= own_rss / 2 + child_rss,
            "{tree} {own_rss} {child_rss}"
        );
        assert!(tree_resident_bytes(u32::MAX).is_err(), "no such process");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_memory_and_cpu_time_are_readable() {
        assert!(resident_bytes(std::process::id()).unwrap() > 0);
        let ticks_before = process_cpu_ticks(std::process::id()).unwrap();
        let before = cpu_time().expect("getrusage works");
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        let used = cpu_time().unwrap().since(before);
        assert!(used.user + used.system > Duration::ZERO);
        assert!(process_cpu_ticks(std::process::id()).unwrap() >= ticks_before);
        assert!((10..=10_000).contains(&clock_ticks_per_second()));
        let limit = raise_open_file_limit().unwrap();
        assert!(limit.soft > 0 && limit.soft <= limit.hard, "{limit:?}");
    }
}

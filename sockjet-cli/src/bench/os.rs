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
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(crate) struct CpuTime {
    /// Time running its own code.
    pub(crate) user: Duration,
    /// Time in the kernel on its behalf (system calls: here, mostly socket I/O).
    pub(crate) system: Duration,
}

impl CpuTime {
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

//! What /proc says about processes: children, open sockets, whether one is gone (Linux).

use std::{
    fs, thread,
    time::{Duration, Instant},
};

/// The process ids whose parent is `parent`.
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect();
    children.sort_unstable();
    children
}

/// The state letter and parent id of a process, from /proc/PID/stat (whose second field,
/// the command name, is in parentheses and may hold spaces).
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// How many sockets the process has open (its listeners and connections).
pub fn sockets(pid: u32) -> usize {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Whether the process has exited: no longer in /proc, or a zombie nobody reaped yet.
pub fn gone(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|(state, _)| state == 'Z')
}

/// Waits up to `timeout` for every process of `pids` to exit; says whether they did.
pub fn all_gone_within(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|pid| gone(*pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the processes with SIGKILL when dropped: a test that fails must not leave
/// servers behind.
pub struct KillOnDrop(pub Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if !gone(*pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

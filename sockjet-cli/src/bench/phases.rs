//! The phases every mode goes through: waiting for connections to open, the warmup and
//! measurement window, and the end of the connection tasks, each of which Ctrl-C can cut
//! short.

use std::time::{Duration, Instant};

use tokio::{sync::watch, task::JoinSet};

use super::{
    Settings,
    open::OpenCounts,
    os::{self, CpuTime},
    report::Cpu,
    round,
    stats::SharedStats,
};
use crate::Failure;

/// Ctrl-C, as something every phase of a run can wait for.
///
/// Installing the handler replaces the default (the process ends at once): the run
/// stops early and still prints what it measured.
#[derive(Clone, Debug)]
pub(crate) struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// Starts listening for Ctrl-C.
    pub(crate) fn listen() -> Self {
        let (interrupted, receiver) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = interrupted.send(true);
            }
            // Keep the sender: its end would look like an interrupt to the waiters.
            std::future::pending::<()>().await;
        });
        Self(receiver)
    }

    /// An interrupt that comes when `receiver` turns true rather than at Ctrl-C: a load
    /// process's, which its parent stops. Its sender must live as long as it: the
    /// sender's end would look like an interrupt.
    pub(crate) fn from_watch(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    /// Waits for Ctrl-C.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|interrupted| *interrupted).await;
    }
}

/// The measurement window as it went.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// When measuring started.
    start: Instant,
    /// When it ended: as planned, or at Ctrl-C.
    end: Instant,
    /// CPU time the process used in the window, if known.
    cpu: Option<CpuTime>,
    /// What the server (`--server-pid`) used in the window; `None` without one, or if
    /// Ctrl-C came before the window started.
    pub(crate) server: Option<ServerUse>,
    /// Whether Ctrl-C ended it.
    pub(crate) interrupted: bool,
}

/// The measured server's use of the machine in the window, read from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerUse {
    /// CPU time (user plus system, all threads) in the window, if it could be read at
    /// both ends; its resolution is one clock tick (10 ms at the usual 100 Hz).
    pub(crate) cpu: Option<Duration>,
    /// Resident memory at the end of the window, if it could be read.
    pub(crate) rss_bytes: Option<u64>,
}

/// The CPU time of process `pid` in clock ticks, or `None` if it cannot be read.
fn server_ticks(pid: Option<u32>) -> Option<u64> {
    os::process_cpu_ticks(pid?).ok()
}

impl Window {
    /// Waits through the warmup (until `start`) and the measurement (until `end`), or
    /// until Ctrl-C, and reads the process's CPU time at both ends, and that of the server
    /// `server_pid` if given (and its resident memory at the end).
    pub(crate) async fn wait(
        start: Instant,
        end: Instant,
        server_pid: Option<u32>,
        interrupt: &mut Interrupt,
    ) -> Self {
        let interrupted = |at: Instant| Self {
            start,
            end: at.max(start),
            cpu: None,
            server: None,
            interrupted: true,
        };
        tokio::select! {
            () = tokio::time::sleep_until(start.into()) => {}
            () = interrupt.wait() => return interrupted(Instant::now()),
        }
        let cpu_at_start = os::cpu_time();
        let server_at_start = server_ticks(server_pid);
        let interrupted_at = tokio::select! {
            () = tokio::time::sleep_until(end.into()) => None,
            () = interrupt.wait() => Some(Instant::now()),
        };
        let cpu = cpu_at_start
            .zip(os::cpu_time())
            .map(|(before, after)| after.since(before));
        let server = server_pid.map(|pid| {
            let ticks = server_at_start
                .zip(server_ticks(Some(pid)))
                .map(|(before, after)| after.saturating_sub(before));
            let per_second = os::clock_ticks_per_second();
            ServerUse {
                cpu: ticks.map(|ticks| Duration::from_secs_f64(ticks as f64 / per_second as f64)),
                rss_bytes: os::tree_resident_bytes(pid).ok(),
            }
        });
        Self {
            start,
            end: interrupted_at.unwrap_or(end),
            cpu,
            server,
            interrupted: interrupted_at.is_some(),
        }
    }

    /// Length of the window in seconds.
    pub(crate) fn seconds(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }

    /// The CPU use for the report.
    pub(crate) fn cpu_report(&self, threads: usize) -> Option<Cpu> {
        Some(cpu_report(self.cpu?, self.seconds(), threads))
    }

    /// The server's CPU time in the window in seconds, if known.
    pub(crate) fn server_cpu_seconds(&self) -> Option<f64> {
        Some(self.server?.cpu?.as_secs_f64())
    }

    /// The server's CPU time per operation (echo, cycle) in microseconds, if known and
    /// there were any.
    pub(crate) fn server_cpu_per_op_us(&self, operations: u64) -> Option<f64> {
        let seconds = self.server_cpu_seconds()?;
        (operations > 0).then(|| round(seconds * 1e6 / operations as f64, 3))
    }
}

/// The report of `cpu` used in `seconds` by `threads` threads.
pub(crate) fn cpu_report(cpu: CpuTime, seconds: f64, threads: usize) -> Cpu {
    let used = (cpu.user + cpu.system).as_secs_f64();
    Cpu {
        user_s: round(cpu.user.as_secs_f64(), 3),
        system_s: round(cpu.system.as_secs_f64(), 3),
        percent_of_one_core: if seconds > 0.0 {
            round(used / seconds * 100.0, 1)
        } else {
            0.0
        },
        threads,
    }
}

/// Waits for `tasks` to end, at most until `deadline` or Ctrl-C, then aborts the rest.
pub(crate) async fn join_until(
    tasks: &mut JoinSet<()>,
    deadline: Instant,
    interrupt: &mut Interrupt,
) {
    let all = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        () = all => {}
        () = tokio::time::sleep_until(deadline.into()) => {}
        () = interrupt.wait() => {}
    }
    tasks.abort_all();
    // Aborted tasks drop their recorders, which flush what they hold.
    while tasks.join_next().await.is_some() {}
}

/// Waits until every connection attempt ended; fails if Ctrl-C came first or none
/// opened.
pub(crate) async fn all_opened(
    counts: &OpenCounts,
    requested: usize,
    settings: &Settings,
    stats: &SharedStats,
    interrupt: &mut Interrupt,
) -> Result<(), Failure> {
    all_attempted(counts, requested, interrupt).await?;
    any_opened(counts.opened(), requested, settings, stats)
}

/// Waits until every connection attempt ended; fails if Ctrl-C came first.
pub(crate) async fn all_attempted(
    counts: &OpenCounts,
    requested: usize,
    interrupt: &mut Interrupt,
) -> Result<(), Failure> {
    tokio::select! {
        () = counts.all_done() => Ok(()),
        () = interrupt.wait() => Err(interrupted_opening(counts.opened(), requested)),
    }
}

/// The failure of a run cut short by Ctrl-C while `opened` of `requested` connections
/// were open.
pub(crate) fn interrupted_opening(opened: usize, requested: usize) -> Failure {
    Failure::new(format!(
        "interrupted while opening connections ({opened} of {requested} open)"
    ))
}

/// Fails, with the first reason, if none of the `requested` connections opened.
pub(crate) fn any_opened(
    opened: usize,
    requested: usize,
    settings: &Settings,
    stats: &SharedStats,
) -> Result<(), Failure> {
    if opened > 0 {
        return Ok(());
    }
    let why = stats
        .outcomes()
        .first_connect_failure
        .clone()
        .unwrap_or_else(|| "unknown error".to_owned());
    Err(Failure::new(format!(
        "cannot connect to {}: {why} (all {requested} connections failed)",
        settings.target.url
    )))
}

//! A load process of `--idle N --processes P` (the hidden `--worker-slice`): opens its
//! share of the connections, reports to its parent on stdout (see `idle_wire.rs`), holds
//! them until the parent says `close` on stdin (or the pipe ends), closes them, and
//! reports again.

use std::{fmt, process::ExitCode, str::FromStr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    sync::watch,
};

use super::{
    Settings,
    idle::IdleConnections,
    idle_wire::{CLOSE_COMMAND, Snapshot, WorkerLine},
    open::Share,
    os,
    phases::Interrupt,
};
use crate::Failure;

/// How often a worker reports its progress while opening; the parent takes a long
/// silence for a hang.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The share of a run's connections a load process opens: `--worker-slice
/// START/COUNT/TOTAL`, connections `START..START + COUNT` of `TOTAL`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) struct WorkerSlice {
    /// The run-wide index of the first.
    pub(crate) start: usize,
    /// How many.
    pub(crate) count: usize,
    /// Connections in the run.
    pub(crate) total: usize,
}

impl FromStr for WorkerSlice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let invalid = || format!("{value:?} is not START/COUNT/TOTAL");
        let mut parts = value.split('/').map(str::parse::<usize>);
        let mut next = || parts.next().and_then(Result::ok).ok_or_else(invalid);
        let (start, count, total) = (next()?, next()?, next()?);
        if parts.next().is_some()
            || count == 0
            || start.checked_add(count).is_none_or(|end| end > total)
        {
            return Err(invalid());
        }
        Ok(Self {
            start,
            count,
            total,
        })
    }
}

impl fmt::Display for WorkerSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.start, self.count, self.total)
    }
}

/// Runs the load process: see the module's documentation. Exits with 0 after the last
/// report, 1 if the parent went away first.
pub(crate) async fn run(settings: &Settings, slice: WorkerSlice) -> Result<ExitCode, Failure> {
    die_with_parent();
    // The parent's word ends the hold: `close`, or the end of the pipe (the parent exited).
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == CLOSE_COMMAND {
                    break;
                }
            }
            let _ = stop.send(true);
        }
    });
    let mut told_to_stop = Interrupt::from_watch(stopped);
    // A worker's stdout is its parent: if a line cannot go, stop as if told to.
    let send = {
        let stop = Arc::clone(&stop);
        move |line: &WorkerLine| {
            if line.send().is_err() {
                let _ = stop.send(true);
            }
        }
    };

    let share = Share {
        first: slice.start,
        total: slice.total,
    };
    let mut connections = IdleConnections::start(settings, slice.count, Some(share));
    let progress = tokio::spawn({
        let (counts, send) = (Arc::clone(&connections.counts), send.clone());
        async move {
            let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                ticks.tick().await;
                send(&WorkerLine::Progress {
                    opened: counts.opened(),
                    failed: counts.failed(),
                });
            }
        }
    });
    let opened = connections.all_attempted(&mut told_to_stop).await;
    if opened.is_ok() {
        connections.warm(settings, &mut told_to_stop).await;
    }
    progress.abort();
    if opened.is_err() {
        // The parent gave up on the run while the connections opened.
        return Ok(ExitCode::FAILURE);
    }
    let threads = settings.threads;
    send(&WorkerLine::Holding(Box::new(Snapshot::of(
        &connections,
        connections.held(),
        None,
        threads,
    ))));

    let cpu_before = os::cpu_time();
    told_to_stop.wait().await;
    let cpu = cpu_before
        .zip(os::cpu_time())
        .map(|(before, after)| after.since(before));
    // The close is bounded by its own timeout; nothing cuts it shorter.
    let (_never, never_stopped) = watch::channel(false);
    let held = connections
        .close(&mut Interrupt::from_watch(never_stopped))
        .await;
    send(&WorkerLine::Closed(Box::new(Snapshot::of(
        &connections,
        held,
        cpu,
        threads,
    ))));
    Ok(ExitCode::SUCCESS)
}

/// Asks the kernel to end this process when its parent dies (SIGKILL included), so that
/// no worker outlives the run holding connections. There is a window between the
/// parent's fork and this call where the parent may die unnoticed: then stdin is at its
/// end already, which stops the worker too.
#[cfg(target_os = "linux")]
fn die_with_parent() {
    use nix::sys::{prctl::set_pdeathsig, signal::Signal};
    // Failing leaves the end of stdin to stop the worker.
    let _ = set_pdeathsig(Signal::SIGTERM);
}

/// Elsewhere the end of stdin stops a worker whose parent died.
#[cfg(not(target_os = "linux"))]
fn die_with_parent() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_parse_and_are_checked() {
        let slice: WorkerSlice = "200/100/600".parse().unwrap();
        assert_eq!(
            slice,
            WorkerSlice {
                start: 200,
                count: 100,
                total: 600
            }
        );
        assert_eq!(slice.to_string(), "200/100/600");
        for bad in ["", "1/2", "1/2/3/4", "0/0/5", "4/2/5", "a/1/2", "-1/1/2"] {
            assert!(bad.parse::<WorkerSlice>().is_err(), "{bad:?} accepted");
        }
        assert!("0/5/5".parse::<WorkerSlice>().is_ok());
    }
}

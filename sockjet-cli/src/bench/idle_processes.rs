//! `--idle N` over several load processes: one process can hold no more connections than
//! its open-file limit, which an unprivileged user cannot raise past the hard limit.
//!
//! The parent runs its own executable P times as workers (`--worker-slice`, see
//! `idle_worker.rs`), each opening its share of the connections from the source addresses
//! one process holding all N would use; it reads their lines (`idle_wire.rs`), reads the
//! server's memory once all hold, holds for `--duration`, tells them to close, and
//! merges their reports into one.
//!
//! Every wait is bounded: a worker silent for longer than [`SILENCE_LIMIT`] while it
//! opens, or without its final report [`CLOSE_LIMIT`] after `close`, is killed and
//! counted as failed. Workers are killed when the parent drops them (an early return,
//! Ctrl-C while opening) and end with it (see `idle_worker::die_with_parent`).

use std::{
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
};

use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    idle::{SETTLE, holding_status, rss_after_settling, rss_before_opening, rss_per_connection},
    idle_wire::{CLOSE_COMMAND, Snapshot, WorkerLine},
    idle_worker::WorkerSlice,
    notice,
    open::OpenCounts,
    os::CpuTime,
    phases::{Interrupt, Window, any_opened, cpu_report, interrupted_opening},
    progress::{Progress, Status},
    report::{Idle, Report, common_report, group},
    stats::{Outcomes, SharedStats, Totals},
};
use crate::{Failure, io_message};

/// File descriptors a process needs besides its connections: stdio, the runtime's
/// epoll and wakeup descriptors, files in /proc.
pub(crate) const FD_MARGIN: usize = 64;

/// Longest silence of a worker while it opens its connections: it reports every
/// [`PROGRESS_INTERVAL`](super::idle_worker::PROGRESS_INTERVAL) whatever happens, and no step of opening (a connect and
/// handshake, an echo while warming) waits longer than [`HANDSHAKE_TIMEOUT`].
const SILENCE_LIMIT: Duration = Duration::from_secs(HANDSHAKE_TIMEOUT.as_secs() + 5);

/// Longest wait for a worker's final report after `close`: its close timeout, the grace
/// beyond it, and time to write the report and for the pipe.
const CLOSE_LIMIT: Duration = Duration::from_secs(CLOSE_TIMEOUT.as_secs() + GRACE.as_secs() + 2);

/// Load processes for `connections`: `asked` (at most one per connection), else as few
/// as the open-file limit `soft_limit` allows (each process also needs [`FD_MARGIN`]
/// descriptors); 1 when the limit is unknown or allows them all.
pub(crate) fn process_count(
    connections: usize,
    asked: Option<usize>,
    soft_limit: Option<u64>,
) -> usize {
    if let Some(asked) = asked {
        return asked.clamp(1, connections.max(1));
    }
    let Some(limit) = soft_limit.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)) else {
        return 1;
    };
    if connections.saturating_add(FD_MARGIN) <= limit {
        return 1;
    }
    let per_process = limit.saturating_sub(FD_MARGIN).max(1);
    connections.div_ceil(per_process)
}

/// The shares of `total` connections among `processes` workers, as even as can be.
fn slices(total: usize, processes: usize) -> Vec<WorkerSlice> {
    (0..processes)
        .map(|number| {
            let start = total * number / processes;
            let end = total * (number + 1) / processes;
            WorkerSlice {
                start,
                count: end - start,
                total,
            }
        })
        .filter(|slice| slice.count > 0)
        .collect()
}

/// Where a worker is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Phase {
    /// Opening (and warming) its connections, reporting progress.
    Opening,
    /// Holding them, silent.
    Holding,
    /// Told to close, its final report due by `deadline`.
    Closing { deadline: Instant },
    /// Reported, or gone.
    Done,
}

/// One load process, as the parent sees it.
#[derive(Debug)]
struct Worker {
    /// Its number, from 1, for messages.
    number: usize,
    slice: WorkerSlice,
    child: Child,
    stdin: Option<ChildStdin>,
    phase: Phase,
    /// When it last wrote a line.
    heard: Instant,
    /// Its latest figures (holding, then closed).
    snapshot: Option<Box<Snapshot>>,
    /// Whether `snapshot` is the final one.
    closed: bool,
    /// What went wrong with it, if anything.
    problem: Option<String>,
}

/// What a worker's stdout brought.
#[derive(Debug)]
enum Event {
    /// A line.
    Line(WorkerLine),
    /// A line that is not one of ours.
    Garbled(String),
    /// The end of its stdout: it exited (or closed it).
    Ended,
}

impl Worker {
    /// Starts worker `number` on `slice`, its lines sent to `events`.
    fn spawn(
        exe: &Path,
        settings: &Settings,
        number: usize,
        slice: WorkerSlice,
        events: mpsc::UnboundedSender<(usize, Event)>,
    ) -> Result<Self, Failure> {
        let mut command = Command::new(exe);
        command
            .args(worker_args(settings, slice))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its warnings, if any, go where the parent's go.
            .stderr(Stdio::inherit())
            // Killed if the parent drops it: on an early return or Ctrl-C while opening.
            .kill_on_drop(true);
        // Its own process group: Ctrl-C at a terminal then reaches the parent only, which
        // stops the workers in order (they would otherwise die at once, unreported).
        #[cfg(unix)]
        command.process_group(0);
        // The workers are spawned from a runtime worker thread, which lives as long as the
        // run: a worker's parent-death signal follows the thread that forked it.
        let mut child = command.spawn().map_err(|error| {
            Failure::new(format!(
                "cannot start load process {number} ({}): {}",
                exe.display(),
                io_message(&error)
            ))
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        tokio::spawn(async move {
            let Some(stdout) = stdout else {
                let _ = events.send((number, Event::Ended));
                return;
            };
            let mut lines = BufReader::new(stdout).lines();
            let event = loop {
                match lines.next_line().await {
                    Ok(Some(line)) => match serde_json::from_str(&line) {
                        Ok(line) => {
                            if events.send((number, Event::Line(line))).is_err() {
                                return;
                            }
                        }
                        Err(_) => break Event::Garbled(line),
                    },
                    Ok(None) | Err(_) => break Event::Ended,
                }
            };
            let _ = events.send((number, event));
        });
        Ok(Self {
            number,
            slice,
            child,
            stdin,
            phase: Phase::Opening,
            heard: Instant::now(),
            snapshot: None,
            closed: false,
            problem: None,
        })
    }

    /// When it must be heard from next, if it must.
    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Opening => Some(self.heard + SILENCE_LIMIT),
            Phase::Closing { deadline } => Some(deadline),
            Phase::Holding | Phase::Done => None,
        }
    }

    /// Gives up on it: kills it and notes why.
    fn fail(&mut self, why: String) {
        let _ = self.child.start_kill();
        self.stdin = None;
        self.phase = Phase::Done;
        self.problem.get_or_insert(why);
    }

    /// Tells it to close its connections and report.
    async fn close(&mut self) {
        if self.phase != Phase::Holding {
            return;
        }
        if let Some(mut stdin) = self.stdin.take() {
            // A worker that cannot be written to has exited: its stdout will say so.
            let _ = stdin
                .write_all(format!("{CLOSE_COMMAND}\n").as_bytes())
                .await;
            let _ = stdin.flush().await;
        }
        self.phase = Phase::Closing {
            deadline: Instant::now() + CLOSE_LIMIT,
        };
    }
}

/// The workers' progress, for the live display.
#[derive(Debug)]
struct Tally {
    opened: Vec<AtomicUsize>,
    failed: Vec<AtomicUsize>,
    holding: AtomicUsize,
}

impl Tally {
    fn status(&self, requested: usize, processes: usize) -> Status {
        let sum = |counts: &[AtomicUsize]| -> usize {
            counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .sum()
        };
        let failed = match sum(&self.failed) {
            0 => String::new(),
            failed => format!(", {} failed", group(failed as u64)),
        };
        Status {
            line: format!(
                "opening connections: {} of {} open{failed} ({} of {processes} load processes \
                 done opening)",
                group(sum(&self.opened) as u64),
                group(requested as u64),
                self.holding.load(Ordering::Relaxed)
            ),
            timeline: None,
        }
    }
}

/// The load processes of a run.
struct Workers {
    workers: Vec<Worker>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    tally: Arc<Tally>,
}

impl Workers {
    /// Starts one worker per slice.
    fn spawn(settings: &Settings, slices: &[WorkerSlice]) -> Result<Self, Failure> {
        let exe = std::env::current_exe().map_err(|error| {
            Failure::new(format!(
                "cannot find the sockjet executable to start load processes: {}",
                io_message(&error)
            ))
        })?;
        let (sender, events) = mpsc::unbounded_channel();
        let workers = slices
            .iter()
            .enumerate()
            .map(|(index, slice)| Worker::spawn(&exe, settings, index + 1, *slice, sender.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let zeros = || slices.iter().map(|_| AtomicUsize::new(0)).collect();
        let tally = Arc::new(Tally {
            opened: zeros(),
            failed: zeros(),
            holding: AtomicUsize::new(0),
        });
        Ok(Self {
            workers,
            events,
            tally,
        })
    }

    /// Reads the workers' lines until none is in a phase that `waiting` accepts, killing
    /// those that miss their deadline; returns `false` if `interrupt` came first.
    async fn wait_while(
        &mut self,
        waiting: impl Fn(Phase) -> bool,
        mut interrupt: Option<&mut Interrupt>,
    ) -> bool {
        loop {
            let pending = self.workers.iter().filter(|worker| waiting(worker.phase));
            let Some(deadline) = pending.filter_map(Worker::deadline).min() else {
                // None waited for, or only silent holders, which this loop does not wait for.
                return true;
            };
            let interrupted = async {
                match interrupt.as_deref_mut() {
                    Some(interrupt) => interrupt.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.events.recv() => match event {
                    Some((number, event)) => self.handle(number, event),
                    // Every reader ended: each sent its end first, so none is left waiting.
                    None => return true,
                },
                () = tokio::time::sleep_until(deadline.into()) => self.expire(),
                () = interrupted => return false,
            }
        }
    }

    /// Takes in worker `number`'s `event`.
    fn handle(&mut self, number: usize, event: Event) {
        let Some(worker) = self.workers.get_mut(number - 1) else {
            return;
        };
        worker.heard = Instant::now();
        let index = number - 1;
        match event {
            Event::Line(WorkerLine::Progress { opened, failed }) => {
                self.tally.opened[index].store(opened, Ordering::Relaxed);
                self.tally.failed[index].store(failed, Ordering::Relaxed);
            }
            Event::Line(WorkerLine::Holding(snapshot)) if worker.phase == Phase::Opening => {
                self.tally.opened[index].store(snapshot.opened, Ordering::Relaxed);
                self.tally.failed[index].store(snapshot.failed, Ordering::Relaxed);
                self.tally.holding.fetch_add(1, Ordering::Relaxed);
                worker.snapshot = Some(snapshot);
                worker.phase = Phase::Holding;
            }
            Event::Line(WorkerLine::Closed(snapshot)) if worker.phase != Phase::Done => {
                worker.snapshot = Some(snapshot);
                worker.closed = true;
                worker.phase = Phase::Done;
            }
            // Out of turn: the worker is done, or the line is not for this phase.
            Event::Line(_) => {}
            Event::Garbled(line) => {
                let line: String = line.chars().take(200).collect();
                worker.fail(format!("wrote an unexpected line: {line:?}"));
            }
            Event::Ended => {
                if worker.phase != Phase::Done {
                    worker.fail("exited before reporting".to_owned());
                }
            }
        }
    }

    /// Kills the workers past their deadline.
    fn expire(&mut self) {
        let now = Instant::now();
        for worker in &mut self.workers {
            match (worker.phase, worker.deadline()) {
                (Phase::Opening, Some(deadline)) if deadline <= now => worker.fail(format!(
                    "silent for {} s while opening",
                    SILENCE_LIMIT.as_secs()
                )),
                (Phase::Closing { .. }, Some(deadline)) if deadline <= now => worker.fail(format!(
                    "no report within {} s of the close",
                    CLOSE_LIMIT.as_secs()
                )),
                _ => {}
            }
        }
    }

    /// Has every holding worker close and report, within [`CLOSE_LIMIT`].
    async fn close(&mut self) {
        for worker in &mut self.workers {
            worker.close().await;
        }
        self.wait_while(|phase| matches!(phase, Phase::Closing { .. }), None)
            .await;
    }

    /// Kills every worker still running.
    fn kill_all(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.child.start_kill();
        }
    }

    /// Waits (briefly) for every worker to exit, then kills those that have not.
    async fn reap(&mut self) {
        let deadline = tokio::time::Instant::now() + GRACE;
        for worker in &mut self.workers {
            if tokio::time::timeout_at(deadline, worker.child.wait())
                .await
                .is_err()
            {
                let _ = worker.child.start_kill();
            }
        }
    }
}

/// What the workers measured, added up.
#[derive(Debug)]
struct Merged {
    stats: Arc<SharedStats>,
    counts: OpenCounts,
    held: usize,
    messages_sent: usize,
    echoes_received: usize,
    /// The longest warm-up of any worker.
    warm_s: Option<f64>,
    /// The workers' CPU time in the hold, of those whose final report came.
    cpu: Option<CpuTime>,
    threads: usize,
    /// Workers that failed.
    failed_workers: usize,
}

impl Merged {
    /// Adds up the workers' latest reports. A worker lost before it held counts all of its
    /// share as failed attempts; one lost later counts what it had opened, none held.
    fn of(workers: &[Worker]) -> Result<Self, Failure> {
        let stats = SharedStats::new();
        let (mut opened, mut failed, mut compressed) = (0, 0, 0);
        let mut extensions = None;
        let mut merged = Self {
            stats: Arc::clone(&stats),
            counts: OpenCounts::default(),
            held: 0,
            messages_sent: 0,
            echoes_received: 0,
            warm_s: None,
            cpu: None,
            threads: 0,
            failed_workers: 0,
        };
        for worker in workers {
            merged.failed_workers += usize::from(worker.problem.is_some());
            let Some(snapshot) = &worker.snapshot else {
                let why = worker.problem.as_deref().unwrap_or("did not report");
                let reason = format!("load process {} {why}", worker.number);
                failed += worker.slice.count;
                let mut outcomes = Outcomes::default();
                outcomes
                    .connect_failures
                    .insert(reason.clone(), worker.slice.count as u64);
                outcomes.first_connect_failure = Some(reason);
                stats.absorb(&Totals::default(), &outcomes);
                continue;
            };
            let totals = snapshot.totals().map_err(|why| {
                Failure::new(format!("load process {} sent {why}", worker.number))
            })?;
            stats.absorb(&totals, &snapshot.outcomes);
            opened += snapshot.opened;
            failed += snapshot.failed;
            compressed += snapshot.compressed;
            if extensions.is_none() {
                extensions.clone_from(&snapshot.extensions);
            }
            if worker.closed {
                merged.held += snapshot.held;
            }
            merged.messages_sent += snapshot.messages_sent;
            merged.echoes_received += snapshot.echoes_received;
            merged.warm_s = match (merged.warm_s, snapshot.warm_s) {
                (Some(longest), Some(warm_s)) => Some(longest.max(warm_s)),
                (longest, warm_s) => longest.or(warm_s),
            };
            if let Some(cpu) = snapshot.cpu {
                merged.cpu = Some(merged.cpu.unwrap_or_default().plus(cpu));
            }
            merged.threads += snapshot.threads;
        }
        merged.counts = OpenCounts::ended(opened, failed, compressed, extensions);
        Ok(merged)
    }
}

/// Runs `--idle N` over `processes` load processes and reports as one run.
pub(crate) async fn run(settings: &Settings, processes: usize) -> Result<Report, Failure> {
    let args = &settings.args;
    let requested = args.connections();
    let mut interrupt = Interrupt::listen();
    let rss_before = rss_before_opening(settings)?;

    let slices = slices(requested, processes);
    let mut workers = Workers::spawn(settings, &slices)?;
    let progress = Progress::start(settings.display, {
        let (tally, processes) = (Arc::clone(&workers.tally), slices.len());
        move || tally.status(requested, processes)
    });
    let all_open = workers
        .wait_while(|phase| phase == Phase::Opening, Some(&mut interrupt))
        .await;
    progress.finish();
    if !all_open {
        workers.kill_all();
        let opened = workers
            .tally
            .opened
            .iter()
            .map(|count| count.load(Ordering::Relaxed));
        return Err(interrupted_opening(opened.sum(), requested));
    }
    let merged = Merged::of(&workers.workers)?;
    if let Err(failure) = any_opened(merged.counts.opened(), requested, settings, &merged.stats) {
        workers.kill_all();
        return Err(failure);
    }

    let hold_start = Instant::now();
    let hold_end = hold_start + args.duration.max(SETTLE);
    let progress = Progress::start(settings.display, {
        let held = merged.counts.opened();
        move || holding_status(held, hold_start, hold_end)
    });
    let rss_after = rss_after_settling(settings, &mut interrupt).await;
    let window = Window::wait(hold_start, hold_end, None, &mut interrupt).await;
    workers.close().await;
    progress.finish();
    workers.reap().await;

    for worker in &workers.workers {
        if let Some(problem) = &worker.problem {
            notice(
                settings.display,
                &format!(
                    "load process {} (connections {}..{}) {problem}",
                    worker.number,
                    worker.slice.start,
                    worker.slice.start + worker.slice.count
                ),
            );
        }
    }
    let merged = Merged::of(&workers.workers)?;
    let mut report = common_report(
        settings,
        &merged.stats,
        requested,
        Some(&merged.counts),
        &window,
    );
    report.parameters.threads = merged.threads;
    report.cpu = merged
        .cpu
        .map(|cpu| cpu_report(cpu, window.seconds(), merged.threads));
    report.server_rss_bytes = rss_after;
    report.idle = Some(Idle {
        held: merged.held as u64,
        warmed: args.warms(),
        messages_sent: merged.messages_sent as u64,
        echoes_received: merged.echoes_received as u64,
        warm_s: merged.warm_s.map(|seconds| super::round(seconds, 3)),
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        server_rss_per_connection_bytes: rss_per_connection(
            rss_before,
            rss_after,
            merged.counts.opened(),
        ),
        processes_failed: merged.failed_workers as u64,
    });
    Ok(report)
}

/// The command line of a worker: the options of the run that shape its connections.
fn worker_args(settings: &Settings, slice: WorkerSlice) -> Vec<String> {
    let args = &settings.args;
    let mut command = vec![
        "bench".to_owned(),
        args.url.clone(),
        "--idle".to_owned(),
        slice.total.to_string(),
        "--worker-slice".to_owned(),
        slice.to_string(),
        "--quiet".to_owned(),
    ];
    let flags = [
        (args.compression, "--compression"),
        (args.warm, "--warm"),
        (args.binary, "--binary"),
        (args.text, "--text"),
    ];
    command.extend(
        flags
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, flag)| flag.to_owned()),
    );
    if let Some(size) = args.size {
        command.extend(["--size".to_owned(), size.to_string()]);
    }
    if let Some(threads) = args.threads {
        command.extend(["--threads".to_owned(), threads.to_string()]);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_follow_the_file_limit_unless_asked() {
        // Within the limit: one process, whatever the limit.
        assert_eq!(process_count(10_000, None, Some(20_000)), 1);
        assert_eq!(process_count(19_936, None, Some(20_000)), 1);
        assert_eq!(process_count(10_000, None, None), 1);
        // Beyond it: as few as fit, 19,936 connections each under a limit of 20,000.
        assert_eq!(process_count(19_937, None, Some(20_000)), 2);
        assert_eq!(process_count(50_000, None, Some(20_000)), 3);
        assert_eq!(process_count(600, None, Some(256)), 4);
        assert_eq!(process_count(600, None, Some(10)), 600);
        // Asked for: as asked, at most one per connection.
        assert_eq!(process_count(50_000, Some(1), Some(20_000)), 1);
        assert_eq!(process_count(600, Some(3), Some(20_000)), 3);
        assert_eq!(process_count(2, Some(3), None), 2);
    }

    #[test]
    fn slices_cover_the_run_evenly() {
        let shares = slices(50_000, 3);
        assert_eq!(shares.len(), 3);
        assert_eq!(
            shares.iter().map(|slice| slice.count).sum::<usize>(),
            50_000
        );
        for pair in shares.windows(2) {
            assert_eq!(pair[0].start + pair[0].count, pair[1].start);
        }
        assert_eq!(shares[0].start, 0);
        assert!(
            shares
                .iter()
                .all(|slice| (16_666..=16_667).contains(&slice.count))
        );
        assert!(shares.iter().all(|slice| slice.total == 50_000));
        assert_eq!(slices(2, 3).len(), 2, "no empty share");
    }
}

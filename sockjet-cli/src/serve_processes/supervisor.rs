//! The supervisor of `--processes`: holds the port, starts the workers, prints the URL once
//! they all listen, forwards SIGINT and SIGTERM to them, and stops them all when one dies
//! (it does not restart workers: a worker that dies is a bug or a lack of resources, and a
//! restart loop would hide it).

use std::{
    io,
    net::SocketAddr,
    os::unix::process::ExitStatusExt as _,
    process::{ExitCode, ExitStatus, Stdio},
    time::Duration,
};

use nix::{sys::signal, unistd::Pid};
use socket2::Socket;
use sockjet::{ListenAddr, Signal};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
    sync::mpsc,
    task::{JoinError, JoinSet},
    time::{Instant, sleep_until},
};

use super::{worker::reuse_port_socket, worker_args};
use crate::{Failure, io_message, print_line, serve};

/// How long stopped workers get to exit before they are killed: their graceful shutdown
/// waits 10 s at most for connections to close.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `args.processes` workers until a signal or until one of them dies; exits with
/// status 0 when every worker exited with 0 after a signal.
pub(crate) async fn supervise(args: &serve::ServeArgs) -> Result<ExitCode, Failure> {
    // Handlers first: a signal during startup must stop the workers started so far, not
    // end the supervisor and leave them behind.
    let mut next_signal = Box::pin(sockjet::shutdown_signal());
    let early_signal = serve::poll_once(&mut next_signal).await;
    // Checked once here, rather than failing in every worker.
    serve::server_builder(args)?;
    let (_held_port, addr) = hold_port(&args.addr).await?;
    let url = serve::url(args, &ListenAddr::Tcp(addr));
    if let Some(signal) = early_signal {
        tracing::info!(%signal, "signal received before any worker started");
        return Ok(ExitCode::SUCCESS);
    }

    let mut supervision = Supervision::new();
    if let Err(error) = supervision.workers.start(args.processes, addr) {
        supervision.fail(Failure::new(format!(
            "cannot start a worker process: {}",
            io_message(&error)
        )));
    }
    let mut listening = 0;
    while !supervision.workers.exits.is_empty() {
        tokio::select! {
            received = &mut next_signal => {
                supervision.on_signal(received);
                next_signal = Box::pin(sockjet::shutdown_signal());
            }
            Some(_) = supervision.workers.listening.recv() => {
                listening += 1;
                if listening == args.processes && supervision.deadline.is_none() {
                    let pids = supervision.workers.describe();
                    tracing::info!(workers = %pids, "all workers listening");
                    if let Err(failure) = print_line(&format!("listening on {url}")) {
                        supervision.fail(failure);
                    }
                }
            }
            Some(exit) = supervision.workers.exits.join_next() => supervision.on_exit(exit),
            () = sleep_until(supervision.deadline.unwrap_or_else(Instant::now)),
                if supervision.deadline.is_some() && !supervision.killed =>
            {
                supervision.on_deadline();
            }
        }
    }
    match supervision.failure {
        Some(failure) => Err(failure),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The workers, and how far stopping them has gone.
struct Supervision {
    workers: Workers,
    /// Once stopping has begun: when the workers are killed if still running.
    deadline: Option<Instant>,
    /// The signal that stopped the workers: a worker it ended before its handlers were
    /// installed exited as asked.
    stopped_with: Option<signal::Signal>,
    /// The workers were sent SIGKILL: nothing is left to wait for but their exit.
    killed: bool,
    /// They were killed because a second signal asked not to wait: their ends are no
    /// failure.
    hurried: bool,
    /// What the supervisor fails with, the first problem seen.
    failure: Option<Failure>,
}

impl Supervision {
    fn new() -> Self {
        Self {
            workers: Workers::new(),
            deadline: None,
            stopped_with: None,
            killed: false,
            hurried: false,
            failure: None,
        }
    }

    /// Sends `signal` to the workers, once: each shuts down gracefully on it.
    fn stop(&mut self, signal: signal::Signal) {
        if self.deadline.is_none() {
            self.workers.signal(signal);
            self.stopped_with = Some(signal);
            self.deadline = Some(Instant::now() + STOP_TIMEOUT);
        }
    }

    /// Records the first failure and stops the workers.
    fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
        self.stop(signal::Signal::SIGTERM);
    }

    /// SIGINT or SIGTERM: the first is forwarded; a second one, as a second Ctrl-C does for
    /// a single process, asks not to wait for connections to close: the workers, which
    /// ignore further signals, are killed.
    fn on_signal(&mut self, received: Signal) {
        if self.deadline.is_none() {
            tracing::info!(signal = %received, "signal received; stopping the workers");
            self.stop(match received {
                Signal::Interrupt => signal::Signal::SIGINT,
                _ => signal::Signal::SIGTERM,
            });
        } else if !self.killed {
            tracing::warn!(
                signal = %received,
                "killing the workers: exiting without waiting for connections to close"
            );
            self.workers.signal(signal::Signal::SIGKILL);
            self.killed = true;
            self.hurried = true;
        }
    }

    /// A worker exited: expected once stopping has begun, a failure before.
    fn on_exit(&mut self, exit: Result<(u32, io::Result<ExitStatus>), JoinError>) {
        let (pid, status) = match exit {
            Ok((pid, status)) => (pid, status),
            // Its task panicked; dropping the child killed it.
            Err(error) => {
                return self.fail(Failure::new(format!(
                    "internal error watching a worker process: {error}"
                )));
            }
        };
        self.workers.running.retain(|running| *running != pid);
        let status = match status {
            Ok(status) => status,
            Err(error) => {
                return self.fail(Failure::new(format!(
                    "cannot wait for worker process {pid}: {}",
                    io_message(&error)
                )));
            }
        };
        if self.deadline.is_none() {
            tracing::warn!(pid, %status, "worker exited unexpectedly; stopping the others");
            self.fail(Failure::new(format!(
                "worker process {pid} exited unexpectedly ({status})"
            )));
            return;
        }
        let ended_by_our_signal = matches!(
            (status.signal(), self.stopped_with),
            (Some(number), Some(sent)) if number == sent as i32
        );
        let as_asked = status.success() || ended_by_our_signal || self.hurried;
        if !as_asked {
            tracing::warn!(pid, %status, "worker did not exit cleanly");
            self.fail(Failure::new(format!(
                "worker process {pid} did not exit cleanly ({status})"
            )));
        }
    }

    /// The workers had their time to stop: they are killed.
    fn on_deadline(&mut self) {
        let pids = self.workers.describe();
        tracing::warn!(workers = %pids, "workers still running; killing them");
        self.workers.signal(signal::Signal::SIGKILL);
        self.killed = true;
        self.fail(Failure::new("worker processes did not stop in time"));
    }
}

/// Binds, without listening, a SO_REUSEPORT socket on the address the workers will share,
/// and keeps it until they are done. This learns the port when ADDR's is 0, and fails once
/// and early, with the single-process server's message, if the address is taken by a
/// socket that does not share it. A socket that does not listen gets no connections.
async fn hold_port(addr: &str) -> Result<(Socket, SocketAddr), Failure> {
    let cannot =
        |error: &io::Error| Failure::new(format!("cannot listen on {addr}: {}", io_message(error)));
    let mut last_error = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    // Like `TcpListener::bind`: the first address of the name that can be bound.
    for candidate in tokio::net::lookup_host(addr)
        .await
        .map_err(|e| cannot(&e))?
    {
        match reuse_port_socket(candidate).and_then(|socket| {
            let bound = socket.local_addr()?.as_socket();
            Ok((socket, bound))
        }) {
            Ok((socket, Some(bound))) => return Ok((socket, bound)),
            Ok((_, None)) => {}
            Err(error) => last_error = error,
        }
    }
    Err(cannot(&last_error))
}

/// The worker processes.
struct Workers {
    /// The process ids of the workers not yet reaped, to signal.
    running: Vec<u32>,
    /// One task per worker, which ends with the worker: its process id and exit status.
    exits: JoinSet<(u32, io::Result<ExitStatus>)>,
    /// A worker's process id once it listens.
    listening: mpsc::UnboundedReceiver<u32>,
    /// Given to each worker's task.
    listening_sender: mpsc::UnboundedSender<u32>,
}

impl Workers {
    fn new() -> Self {
        let (listening_sender, listening) = mpsc::unbounded_channel();
        Self {
            running: Vec::new(),
            exits: JoinSet::new(),
            listening,
            listening_sender,
        }
    }

    /// Starts `count` workers on `addr`.
    ///
    /// They are started from a thread of the runtime, which lives until the supervisor is
    /// done with them: PR_SET_PDEATHSIG fires when the thread that started a process ends,
    /// not the process (and again each time the worker is handed to another thread of a
    /// dying supervisor, which is why workers ignore signals after the first).
    fn start(&mut self, count: u16, addr: SocketAddr) -> io::Result<()> {
        let program = std::env::current_exe()?;
        let args = worker_args(std::env::args_os().skip(1), std::process::id(), addr);
        for _ in 0..count {
            let mut child = Command::new(&program)
                .args(&args)
                .stdin(Stdio::null())
                // Read for the worker's `listening on` line, which says it accepts.
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // Out of the terminal's process group: Ctrl-C reaches the supervisor
                // only, which forwards it once (a second SIGINT would make a worker exit
                // without waiting for its connections to close).
                .process_group(0)
                // Should the supervisor end without waiting for a worker (a panic).
                .kill_on_drop(true)
                .spawn()?;
            let pid = child
                .id()
                .ok_or_else(|| io::Error::other("worker exited at once"))?;
            tracing::info!(pid, "worker started");
            self.running.push(pid);
            let stdout = child.stdout.take();
            let listening = self.listening_sender.clone();
            self.exits.spawn(async move {
                let watch_stdout = async move {
                    let Some(stdout) = stdout else { return };
                    let mut lines = BufReader::new(stdout).lines();
                    let first = lines.next_line().await;
                    if matches!(&first, Ok(Some(line)) if line.starts_with("listening on ")) {
                        let _ = listening.send(pid);
                    }
                    // Drained, so that the worker never blocks on a full pipe; it prints
                    // nothing more today.
                    while let Ok(Some(_)) = lines.next_line().await {}
                };
                let ((), status) = tokio::join!(watch_stdout, child.wait());
                (pid, status)
            });
        }
        Ok(())
    }

    /// Sends `signal` to every worker not yet reaped.
    fn signal(&self, signal: signal::Signal) {
        for pid in &self.running {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = signal::kill(Pid::from_raw(pid), signal);
            }
        }
    }

    /// The process ids of the running workers, for the log.
    fn describe(&self) -> String {
        let pids: Vec<String> = self.running.iter().map(u32::to_string).collect();
        pids.join(",")
    }
}

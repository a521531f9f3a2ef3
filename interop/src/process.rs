//! Peer processes: spawned in their own process group with piped output, and killed
//! (the whole group) when dropped, so a failing test leaves nothing running.

use std::{
    ffi::OsString,
    fmt::Write as _,
    future::Future,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
    task::JoinHandle,
    time::{Instant, timeout},
};

use crate::deps;

/// How long to wait for the next observation of a peer.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a peer has to exit once it is done.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A program to run as a peer.
#[derive(Clone, Debug)]
pub struct PeerCommand {
    /// For messages, e.g. "python client".
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub envs: Vec<(OsString, OsString)>,
}

impl PeerCommand {
    /// `python peers/<script>` with the interop venv's Python.
    pub fn python(name: &str, script: &str) -> Self {
        Self {
            name: name.to_owned(),
            program: deps::python(),
            args: vec![deps::peer_script(script).into()],
            // UTF-8 whatever the locale; no stray .pyc files in the source tree.
            envs: vec![
                ("PYTHONIOENCODING".into(), "utf-8".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ],
        }
    }

    /// `node peers/<script>`, finding `ws` in the interop `node_modules`.
    pub fn node(name: &str, script: &str) -> Self {
        Self {
            name: name.to_owned(),
            program: deps::node(),
            args: vec![deps::peer_script(script).into()],
            envs: vec![("NODE_PATH".into(), deps::node_modules().into())],
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// A running peer: its observations (JSON lines on stdout) and its stderr.
#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    pid: Option<u32>,
    lines: mpsc::UnboundedReceiver<String>,
    events: Vec<Value>,
    stdout_log: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    stderr_task: Option<JoinHandle<()>>,
}

impl PeerProcess {
    /// Starts the peer in its own process group, in `interop/peers`.
    ///
    /// # Panics
    ///
    /// If it cannot be started.
    pub fn spawn(command: &PeerCommand) -> Self {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .envs(command.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(deps::peers_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({}): {error}; {}",
                    command.name,
                    command.program.display(),
                    deps::INSTALL_HINT
                )
            });
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout_log = Arc::new(Mutex::new(Vec::new()));
        let log = stdout_log.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lock(&log).push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = tokio::spawn(collect(
            child.stderr.take().expect("stderr is piped"),
            stderr.clone(),
        ));
        Self {
            name: command.name.clone(),
            child,
            pid,
            lines,
            events: Vec::new(),
            stdout_log,
            stderr,
            stderr_task: Some(stderr_task),
        }
    }

    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer's next observation, within [`EVENT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// If the peer prints something that is not a JSON object, exits, or says nothing in
    /// time.
    pub async fn next_event(&mut self) -> Result<Value, String> {
        match timeout(EVENT_TIMEOUT, self.lines.recv()).await {
            Err(_) => Err(format!(
                "{} printed no observation within {EVENT_TIMEOUT:?}",
                self.name
            )),
            Ok(None) => Err(format!("{} closed its stdout (exited?)", self.name)),
            Ok(Some(line)) => self.accept(&line),
        }
    }

    /// Waits for the peer's first observation, `{"event":"listening","port":N}`, and
    /// returns the port.
    ///
    /// # Errors
    ///
    /// As [`next_event`](Self::next_event), or if the observation is another one.
    pub async fn listening_port(&mut self) -> Result<u16, String> {
        let listening = self.next_event().await?;
        listening
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|port| u16::try_from(port).ok())
            .filter(|_| listening["event"] == "listening")
            .ok_or_else(|| {
                format!("expected {{\"event\":\"listening\",\"port\":N}}, got {listening}")
            })
    }

    /// Parses and records one line of output.
    fn accept(&mut self, line: &str) -> Result<Value, String> {
        match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => {
                self.events.push(value.clone());
                Ok(value)
            }
            _ => Err(format!(
                "{} printed a line that is not a JSON object: {line:?}",
                self.name
            )),
        }
    }

    /// Waits (within [`EXIT_TIMEOUT`]) for the peer to exit with status 0, and returns
    /// every observation it printed, in order.
    ///
    /// # Errors
    ///
    /// If the peer does not exit in time, exits with a failure status, or prints
    /// something that is not JSON.
    pub async fn finish(&mut self) -> Result<Vec<Value>, String> {
        let status: ExitStatus = match timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Err(_) => {
                return Err(format!(
                    "{} did not exit within {EXIT_TIMEOUT:?}",
                    self.name
                ));
            }
            Ok(Err(error)) => return Err(format!("waiting for {}: {error}", self.name)),
            Ok(Ok(status)) => status,
        };
        // Reaped: kill what it may have left behind now, while the group id is still
        // certainly ours, and never again.
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
        // Its output ends with it: read the rest.
        loop {
            match timeout(EXIT_TIMEOUT, self.lines.recv()).await {
                Err(_) => {
                    return Err(format!(
                        "{}'s stdout stayed open after it exited",
                        self.name
                    ));
                }
                Ok(None) => break,
                Ok(Some(line)) => {
                    self.accept(&line)?;
                }
            }
        }
        if let Some(task) = self.stderr_task.take() {
            let _ = timeout(EXIT_TIMEOUT, task).await;
        }
        if !status.success() {
            return Err(format!("{} failed: {status}", self.name));
        }
        Ok(self.events.clone())
    }

    /// Runs `future` to completion within `limit`, failing early if the peer exits with
    /// a failure status meanwhile.
    ///
    /// # Errors
    ///
    /// The future's error, a timeout, or the peer's failure.
    pub async fn while_running<T>(
        &mut self,
        limit: Duration,
        future: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        let mut future = std::pin::pin!(future);
        let error = loop {
            tokio::select! {
                result = &mut future => match result {
                    Ok(value) => return Ok(value),
                    Err(error) => break error,
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Some(status) = self.exited_with_failure().await {
                        return Err(format!("{} exited early: {status}", self.name));
                    }
                    if Instant::now() >= deadline {
                        break format!("not done within {limit:?}");
                    }
                }
            }
        };
        // The peer probably fails too: give it a moment to say why.
        let settle = Instant::now() + Duration::from_secs(2);
        while Instant::now() < settle {
            if let Some(status) = self.exited_with_failure().await {
                return Err(format!("{error}\n({} exited: {status})", self.name));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(error)
    }

    /// If the peer has exited with a failure status, that status (its stderr collected).
    async fn exited_with_failure(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok()??;
        // Reaped: see `finish`.
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
        if status.success() {
            return None;
        }
        if let Some(task) = self.stderr_task.take() {
            let _ = timeout(EXIT_TIMEOUT, task).await;
        }
        Some(status)
    }

    /// Everything the peer printed so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = format!("--- {} stdout:\n", self.name);
        for line in lock(&self.stdout_log).iter() {
            match line.char_indices().nth(500) {
                Some((cut, _)) => text.push_str(&line[..cut]),
                None => text.push_str(line),
            }
            text.push('\n');
        }
        let _ = write!(text, "--- {} stderr:\n{}", self.name, lock(&self.stderr));
        text
    }

    /// Panics with `message` and [`diagnostics`](Self::diagnostics).
    pub fn fail(&self, message: impl std::fmt::Display) -> ! {
        panic!("{message}\n{}", self.diagnostics())
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // `kill_on_drop` kills the peer itself; this also kills whatever it started
        // (Chromium's zygote and renderers). Not reaped yet, so the id is still ours.
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
    }
}

/// Sends SIGKILL to the process group `pgid` (which `spawn` made the child's own).
#[allow(unsafe_code)]
fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative
        // pid names the process group that `spawn` created for this peer only.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

async fn collect(mut stream: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut buffer = vec![0; 8192];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let mut text = lock(&into);
        // Keep the start and enough of the rest; Chromium can be chatty.
        if text.len() < 256 * 1024 {
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

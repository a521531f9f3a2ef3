//! The `sockjet` binary run as a child process by a test: piped stdio, stdout read line by
//! line with a timeout, stderr collected whole, every wait bounded, killed on drop.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Upper bound for any single wait; generous because CI machines can be slow.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A running `sockjet` process, killed on drop.
pub struct Sockjet {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

/// How a `sockjet` process ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Stdout lines not yet taken with [`Sockjet::line`].
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Sockjet {
    /// Starts `sockjet ARGS` with stdin, stdout and stderr piped.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sockjet"));
        command.args(args);
        Self::spawn(command)
    }

    /// [`Sockjet::start`] under an open-file limit of `limit` (soft and hard, set by
    /// `sh`'s `ulimit -n` before it runs sockjet in its place).
    pub fn start_with_file_limit(limit: u64, args: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_sockjet"))
            .args(args);
        Self::spawn(command)
    }

    /// Runs `command` with stdin, stdout and stderr piped.
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            // The tests check what the default log level prints.
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockjet");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (lines, receiver) = mpsc::channel();
        // Lines go through a channel so that the test can wait for one with a timeout.
        thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // Always read, so that a chatty log never fills the pipe and blocks the child.
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            stdin,
            stdout: receiver,
            stderr: Some(stderr),
        }
    }

    /// Runs `sockjet ARGS` with stdin closed and waits for it to exit.
    pub fn run(args: &[&str]) -> Finished {
        let mut sockjet = Self::start(args);
        sockjet.close_stdin();
        sockjet.finish()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line on stdout.
    pub fn line(&self) -> String {
        self.stdout
            .recv_timeout(TIMEOUT)
            .expect("a line on stdout within the timeout")
    }

    /// Types a line on stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Ends stdin, as Ctrl-D does at a terminal.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends SIGTERM (with `kill`, so on Unix only).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and collects the rest of its output.
    pub fn finish(&mut self) -> Finished {
        self.finish_within(TIMEOUT)
    }

    /// [`Sockjet::finish`], waiting up to `timeout` for the exit.
    pub fn finish_within(&mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for sockjet") {
                break status;
            }
            assert!(Instant::now() < deadline, "sockjet did not exit in time");
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.take_stderr();
        // Stdout is at EOF once stderr is, short of a grandchild holding it open.
        let stdout = self.stdout.iter().collect();
        Finished {
            status,
            stdout,
            stderr,
        }
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .expect("finish called once")
            .join()
            .expect("stderr reader")
    }

    /// Kills the process (SIGKILL on Unix) and reaps it, if it still runs.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Sockjet {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `sockjet serve` and the URL it listens on.
pub struct Serve {
    pub process: Sockjet,
    /// What follows `listening on ` in its first line.
    pub url: String,
}

impl Serve {
    /// Starts `sockjet serve ARGS` and reads the URL from its first line; if none comes
    /// in time, fails with what it wrote on stderr.
    pub fn start(args: &[&str]) -> Self {
        let mut process = Sockjet::start(&[&["serve"], args].concat());
        let line = match process.stdout.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                process.kill();
                panic!("no URL printed; stderr: {}", process.take_stderr());
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self { process, url }
    }

    /// The `host:port` of a TCP URL.
    pub fn host_port(&self) -> &str {
        self.url.split_once("://").expect("a URL").1
    }
}

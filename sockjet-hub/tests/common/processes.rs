//! Child processes for the Redis tests: `sockjet-hub-relay`s connected to a
//! `redis-server` (see `redis_server.rs`). Each is killed when its guard is dropped.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use super::LIMIT;

/// A `sockjet-hub-relay` process; its stderr (the logs) is collected.
pub struct Relay {
    /// `ws://127.0.0.1:PORT`
    pub url: String,
    log: Arc<Mutex<String>>,
    child: Child,
}

impl Relay {
    pub fn start(redis: Option<&str>) -> Self {
        let binary = Path::new(env!("CARGO_BIN_EXE_sockjet-hub-relay"));
        let mut command = Command::new(binary);
        command.args(["--listen", "127.0.0.1:0"]);
        if let Some(redis) = redis {
            command.args(["--redis", redis]);
        }
        let mut child = command
            .env("RUST_LOG", "warn,sockjet_hub=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let collected = log.clone();
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (first_line, line) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = first_line.send(line);
            // Keep reading so that the relay never blocks on a full pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let mut relay = Self {
            url: String::new(),
            log,
            child,
        };
        let line = line.recv_timeout(LIMIT).unwrap_or_else(|_| {
            panic!(
                "the relay printed nothing in {LIMIT:?}; its log:\n{}",
                relay.log()
            )
        });
        relay.url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log:\n{}", relay.log()))
            .to_owned();
        relay
    }

    pub fn room(&self, name: &str) -> String {
        format!("{}/room/{name}", self.url)
    }

    /// What the relay logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log has `needle` at least `times` times.
    pub async fn wait_for_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + LIMIT;
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "the relay did not log {needle:?} {times} times in {LIMIT:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

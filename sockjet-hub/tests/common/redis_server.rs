//! A `redis-server` of a test's own on a free loopback port, killed when its guard is
//! dropped. Shared by sockjet-hub's tests and sockjet-demo's (which include this file);
//! the including module must define `LIMIT`, the bound of every wait.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::LIMIT;

/// Where `redis-server` is: `$SOCKJET_REDIS_SERVER`, else the first on `PATH`. A missing
/// one fails the test: the Redis tests must not pass without running.
fn redis_server_binary() -> PathBuf {
    let found = match std::env::var_os("SOCKJET_REDIS_SERVER") {
        Some(path) => Some(PathBuf::from(path)).filter(|path| path.is_file()),
        None => std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|dir| dir.join("redis-server"))
            .chain([PathBuf::from("/usr/bin/redis-server")])
            .find(|candidate| candidate.is_file()),
    };
    found.unwrap_or_else(|| {
        panic!(
            "redis-server not found (on PATH, or at $SOCKJET_REDIS_SERVER if set): the Redis \
             tests need it; run scripts/install-test-deps.sh (it installs Debian's \
             redis-server)"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own, without persistence, on a loopback port.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> Self {
        // Another process may take the port between our probe and Redis's bind: retry.
        for _ in 0..5 {
            if let Some(server) = Self::try_start(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts one on `port` (again, after [`stop`](Self::stop)).
    pub fn start_on(port: u16) -> Self {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(server) = Self::try_start(port) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_start(port: u16) -> Option<Self> {
        let binary = redis_server_binary();
        let mut child = Command::new(&binary)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                let mut log = String::new();
                if let Some(mut out) = child.stdout.take() {
                    let _ = out.read_to_string(&mut log);
                }
                eprintln!("redis-server on port {port} exited ({status}):\n{log}");
                return None;
            }
            if answers_ping(port) {
                // Its log lines are not needed; drain them so that it never blocks on a
                // full pipe.
                if let Some(out) = child.stdout.take() {
                    thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
                }
                return Some(Self {
                    port,
                    child: Some(child),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (at once, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

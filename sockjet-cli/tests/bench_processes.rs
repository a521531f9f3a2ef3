//! `sockjet bench --idle N` over several load processes (`--processes`, or as many as the
//! open-file limit requires): one report for them all, connections really open at once,
//! workers that end with their parent, and the line protocol of a worker. Everything
//! talks to 127.0.0.1; every wait is bounded; children are killed on drop.

mod common;

use std::{
    net::TcpListener,
    thread,
    time::{Duration, Instant},
};

use common::{Serve, Sockjet, TempDir};
use serde_json::Value;

/// Upper bound for any single wait; generous because CI machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `sockjet serve 127.0.0.1:0 --echo`.
fn echo_server() -> Serve {
    Serve::start(&["127.0.0.1:0", "--echo"])
}

/// Waits until `condition` holds, checking every 20 ms for at most [`TIMEOUT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Open file descriptors of process `pid` (0 if it cannot be read).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

/// The state letter and parent of process `pid`, from /proc/PID/stat.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// The live children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            matches!(state_and_parent(child), Some((state, parent)) if parent == pid && state != 'Z')
        })
        .collect()
}

/// Whether process `pid` has exited (a zombie counts: it holds nothing).
fn exited(pid: u32) -> bool {
    !matches!(state_and_parent(pid), Some((state, _)) if state != 'Z')
}

/// A number in the JSON report.
fn number(json: &Value, pointer: &str) -> f64 {
    json.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {json:#}"))
}

/// A directory and the path of a JSON report in it.
fn report_path(name: &str) -> (TempDir, String) {
    let dir = TempDir::new(name);
    let path = dir.path("report.json").display().to_string();
    (dir, path)
}

/// Waits for `bench` to succeed and returns its JSON report.
fn report_of(bench: &mut Sockjet, path: &str) -> Value {
    let finished = bench.finish_within(TIMEOUT);
    assert!(finished.status.success(), "{finished:#?}");
    let bytes = std::fs::read(path).expect("a JSON report");
    serde_json::from_slice(&bytes).expect("the JSON report parses")
}

/// Asserts that an idle run of `count` connections all opened, held and closed cleanly,
/// from `processes` load processes.
fn assert_all_held(json: &Value, count: f64, processes: f64) {
    assert_eq!(json["mode"], "idle", "{json:#}");
    assert_eq!(number(json, "/parameters/processes"), processes, "{json:#}");
    assert_eq!(number(json, "/connections/opened"), count, "{json:#}");
    assert_eq!(number(json, "/connections/failed"), 0.0, "{json:#}");
    assert_eq!(number(json, "/connections/connect_time_us/count"), count);
    assert_eq!(number(json, "/idle/held"), count, "{json:#}");
    assert_eq!(number(json, "/idle/processes_failed"), 0.0, "{json:#}");
    assert_eq!(number(json, "/errors/total"), 0.0, "{json:#}");
    assert_eq!(number(json, "/close_codes/1000"), count, "{json:#}");
}

#[test]
fn idle_connections_spread_over_load_processes() {
    let server = echo_server();
    let server_pid = server.process.id();
    let (_dir, path) = report_path("processes");
    let pid = server_pid.to_string();
    let mut bench = Sockjet::start(&[
        "bench",
        &server.url,
        "--idle",
        "600",
        "--processes",
        "3",
        "--duration",
        "3",
        "--server-pid",
        &pid,
        "--json",
        &path,
        "-q",
    ]);
    // While the bench holds: all 600 open at the server at once, from three processes.
    wait_until("the server holds 600 connections", || {
        open_fds(server_pid) >= 600
    });
    assert_eq!(children(bench.id()).len(), 3, "three load processes");

    let json = report_of(&mut bench, &path);
    assert_all_held(&json, 600.0, 3.0);
    assert_eq!(number(&json, "/parameters/idle"), 600.0);
    let before = number(&json, "/idle/server_rss_before_bytes");
    let after = number(&json, "/idle/server_rss_after_bytes");
    assert!(before > 0.0 && after > 0.0, "{json:#}");
    assert_eq!(
        json["server_rss_bytes"],
        json["idle"]["server_rss_after_bytes"]
    );
    let per_connection = number(&json, "/idle/server_rss_per_connection_bytes");
    // A WebSocket connection costs a server a few KiB; less than 0 or more than 1 MiB is
    // a reading gone wrong.
    assert!(
        per_connection > 0.0 && per_connection < 1024.0 * 1024.0,
        "{json:#}"
    );
    // The load tool's CPU use is that of the three processes, with all their threads.
    assert!(number(&json, "/cpu/threads") >= 3.0, "{json:#}");
}

#[test]
fn load_processes_follow_the_open_file_limit() {
    let server = echo_server();
    let (_dir, path) = report_path("file-limit");
    // 600 connections under a limit of 256: 192 a process, so 4 processes, unasked.
    let mut bench = Sockjet::start_with_file_limit(
        256,
        &[
            "bench",
            &server.url,
            "--idle",
            "600",
            "--duration",
            "0.5",
            "--json",
            &path,
            "-q",
        ],
    );
    let json = report_of(&mut bench, &path);
    assert_all_held(&json, 600.0, 4.0);
}

#[test]
fn load_processes_end_with_their_parent() {
    let server = echo_server();
    let server_pid = server.process.id();
    let mut bench = Sockjet::start(&[
        "bench",
        &server.url,
        "--idle",
        "100",
        "--processes",
        "2",
        "--duration",
        "60",
        "-q",
    ]);
    wait_until("the server holds 100 connections", || {
        open_fds(server_pid) >= 100
    });
    let workers = children(bench.id());
    assert_eq!(workers.len(), 2, "two load processes");
    // SIGKILL: the parent cannot tell them anything.
    bench.kill();
    wait_until("the load processes exit", || {
        workers.iter().all(|&worker| exited(worker))
    });
    wait_until("the server's connections close", || {
        open_fds(server_pid) < 100
    });
}

#[test]
fn a_load_process_reports_holds_and_closes_when_told() {
    let server = echo_server();
    // `close` on stdin, then the end of stdin alone: either ends the hold.
    for (count, by_command) in [(10, true), (5, false)] {
        let slice = format!("0/{count}/{count}");
        let total = count.to_string();
        let mut worker = Sockjet::start(&[
            "bench",
            &server.url,
            "--idle",
            &total,
            "--worker-slice",
            &slice,
        ]);
        let holding = next_line_with(&worker, "holding");
        assert_eq!(number(&holding, "/holding/opened"), f64::from(count));
        assert_eq!(number(&holding, "/holding/held"), f64::from(count));
        assert_eq!(number(&holding, "/holding/failed"), 0.0);
        if by_command {
            worker.type_line("close");
        } else {
            worker.close_stdin();
        }
        let closed = next_line_with(&worker, "closed");
        assert_eq!(
            number(&closed, "/closed/held"),
            f64::from(count),
            "{closed}"
        );
        assert_eq!(
            closed["closed"]["outcomes"]["close_codes"]["1000"], count,
            "{closed}"
        );
        let histogram = closed["closed"]["connect_times"].as_str().unwrap_or("");
        assert!(!histogram.is_empty(), "{closed}");
        let finished = worker.finish();
        assert!(finished.status.success(), "{finished:#?}");
    }
}

/// The first line from a worker that is a `kind` object, skipping progress lines (a
/// bounded number: four a second).
fn next_line_with(worker: &Sockjet, kind: &str) -> Value {
    for _ in 0..400 {
        let line: Value = serde_json::from_str(&worker.line()).expect("a JSON line");
        if line.get(kind).is_some() {
            return line;
        }
        assert!(line.get("progress").is_some(), "unexpected line {line}");
    }
    panic!("no {kind} line");
}

#[test]
fn load_processes_that_cannot_connect_fail_the_run() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let mut bench = Sockjet::start(&["bench", &url, "--idle", "10", "--processes", "2", "-q"]);
    bench.close_stdin();
    let finished = bench.finish_within(TIMEOUT);
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    let line = finished.stderr.trim_end();
    assert!(
        line.starts_with(&format!("sockjet: cannot connect to {url}: ")),
        "{line}"
    );
    assert!(line.ends_with("(all 10 connections failed)"), "{line}");
}

//! End-to-end tests of `sockjet bench` against `sockjet serve` (and a few scripted
//! servers): the JSON report, the summary, and the exit status. Runs are about a second
//! long, everything talks to 127.0.0.1, and every wait is bounded; children are killed on
//! drop.

mod common;

use std::{
    net::TcpListener,
    process::ExitStatus,
    thread,
    time::{Duration, Instant},
};

use common::{Serve, Sockjet, TempDir, scripted_server};
use serde_json::Value;
use sockjet::{CloseCode, Message};

/// Upper bound for any single wait; generous because CI machines can be slow.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Options that make a short run: four connections, a second measured.
const SHORT_RUN: [&str; 6] = ["--conns", "4", "--duration", "1", "--warmup", "0.2"];

/// Starts `sockjet serve 127.0.0.1:0 --echo OPTIONS` and reads its URL.
fn echo_server(options: &[&str]) -> Serve {
    serve_in_mode("--echo", options)
}

/// Starts `sockjet serve 127.0.0.1:0 MODE OPTIONS` and reads its URL.
fn serve_in_mode(mode: &str, options: &[&str]) -> Serve {
    Serve::start(&[&["127.0.0.1:0", mode], options].concat())
}

/// How a `sockjet bench` run ended.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The `--json` report, if one was written.
    json: Option<Value>,
}

/// Runs `sockjet bench URL ARGS --json FILE` and waits for it, within the timeout.
fn bench(url: &str, args: &[&str]) -> Finished {
    let dir = TempDir::new(&format!("bench-{:?}", thread::current().id()).replace(['(', ')'], ""));
    let json = dir.path("report.json").display().to_string();
    let mut process = Sockjet::start(&[&["bench", url], args, &["--json", &json]].concat());
    process.close_stdin();
    let finished = process.finish_within(TIMEOUT);
    let json = std::fs::read(&json)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("the JSON report parses"));
    Finished {
        status: finished.status,
        stdout: finished
            .stdout
            .iter()
            .map(|line| format!("{line}\n"))
            .collect(),
        stderr: finished.stderr,
        json,
    }
}

/// Runs a bench that must succeed, and returns its JSON report.
fn successful_bench(url: &str, args: &[&str]) -> (Value, Finished) {
    let finished = bench(url, args);
    assert!(finished.status.success(), "{finished:#?}");
    let json = finished.json.clone().expect("a JSON report");
    (json, finished)
}

/// A number in the JSON report.
fn number(json: &Value, pointer: &str) -> f64 {
    json.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {json:#}"))
}

/// Asserts that no error was counted on open connections nor connection attempts.
fn assert_no_errors(json: &Value) {
    assert_eq!(number(json, "/errors/total"), 0.0, "{json:#}");
    assert_eq!(number(json, "/connections/failed"), 0.0, "{json:#}");
}

/// Asserts that the latency percentiles are present and ordered.
fn assert_latency_ordered(json: &Value) {
    let p50 = number(json, "/latency_us/p50");
    let p90 = number(json, "/latency_us/p90");
    let p99 = number(json, "/latency_us/p99");
    let p99_9 = number(json, "/latency_us/p99_9");
    let max = number(json, "/latency_us/max");
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p99_9 && p99_9 <= max,
        "{json:#}"
    );
}

#[test]
fn echo_load_in_text_and_binary() {
    // Pings every 0.2 s: the load tool must answer them without disturbing the count.
    let server = echo_server(&["--ping-interval", "0.2"]);
    for payload in ["--text", "--binary"] {
        let mut args = SHORT_RUN.to_vec();
        args.extend(["--depth", "4", "--size", "100", payload]);
        let (json, finished) = successful_bench(&server.url, &args);
        assert_eq!(json["mode"], "echo");
        assert!(number(&json, "/messages/received") > 0.0, "{json:#}");
        assert!(number(&json, "/messages/per_s") > 0.0, "{json:#}");
        assert!(
            number(&json, "/messages/payload_mb_per_s") > 0.0,
            "{json:#}"
        );
        assert_no_errors(&json);
        assert_latency_ordered(&json);
        assert!(number(&json, "/pings_answered") > 0.0, "{json:#}");
        assert_eq!(json["close_codes"]["1000"], 4, "{json:#}");
        assert_eq!(number(&json, "/connections/opened"), 4.0);
        assert!(number(&json, "/connections/connect_time_us/max") > 0.0);
        assert!(number(&json, "/cpu/percent_of_one_core") >= 0.0);
        // Without --server-pid the server is not measured.
        for field in [
            "server_cpu_seconds",
            "server_cpu_percent",
            "server_cpu_per_message_us",
            "server_cpu_per_cycle_us",
            "server_rss_bytes",
        ] {
            assert_eq!(json[field], Value::Null, "{field}: {json:#}");
        }

        let parameters = &json["parameters"];
        assert_eq!(parameters["conns"], 4);
        assert_eq!(parameters["depth"], 4);
        assert_eq!(parameters["size"], 100);
        assert_eq!(parameters["duration_s"], 1.0);
        assert_eq!(parameters["warmup_s"], 0.2);
        assert_eq!(parameters["rate"], Value::Null);
        assert_eq!(parameters["payload"], &payload[2..]);
        assert_eq!(parameters["payload_variants"], 1);
        assert_eq!(parameters["compression"], false);
        assert_eq!(json["compression"]["requested"], false);

        let summary = &finished.stdout;
        assert!(
            summary.starts_with(&format!(
                "sockjet bench {}: echo, 4 connections",
                server.url
            )),
            "{summary}"
        );
        for label in ["messages:", "latency:", "errors:      none", "load tool:"] {
            assert!(summary.contains(label), "{label} in {summary}");
        }
        assert!(!summary.contains("server:"), "{summary}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn echo_load_reports_the_servers_cpu_and_memory() {
    let server = echo_server(&[]);
    let pid = server.process.id().to_string();
    let mut args = SHORT_RUN.to_vec();
    args.extend(["--depth", "8", "--server-pid", &pid]);
    let (json, finished) = successful_bench(&server.url, &args);
    assert_no_errors(&json);
    assert_eq!(json["parameters"]["server_pid"], server.process.id());
    // A second of echoes at depth 8 keeps the server busy for more than one clock tick.
    let seconds = number(&json, "/server_cpu_seconds");
    assert!(seconds > 0.0, "{json:#}");
    let measured = number(&json, "/measured_s");
    let percent = number(&json, "/server_cpu_percent");
    assert!(
        (percent - seconds / measured * 100.0).abs() < 0.1,
        "{percent}% for {seconds} s in {measured} s: {json:#}"
    );
    // The server has one runtime thread per core at most, plus its main thread.
    let cores = thread::available_parallelism().map_or(1, usize::from) as f64;
    assert!(percent <= (cores + 1.0) * 100.0 + 5.0, "{json:#}");
    let per_message = number(&json, "/server_cpu_per_message_us");
    let received = number(&json, "/messages/received");
    let expected = seconds * 1e6 / received;
    assert!(
        (per_message - expected).abs() <= expected * 0.001 + 0.001,
        "{per_message} µs per message, expected {expected}: {json:#}"
    );
    assert_eq!(json["server_cpu_per_cycle_us"], Value::Null, "{json:#}");
    assert!(number(&json, "/server_rss_bytes") > 0.0, "{json:#}");
    let summary = &finished.stdout;
    assert!(
        summary.contains(&format!("server:      pid {pid}: ")),
        "{summary}"
    );
    assert!(summary.contains("% of one core), "), "{summary}");
    assert!(summary.contains(" µs per message; RSS "), "{summary}");
}

#[test]
fn compression_is_negotiated_with_the_echo_server() {
    let server = echo_server(&[]);
    let mut args = SHORT_RUN.to_vec();
    // Big enough for the server to compress its echoes too (its threshold is 128 bytes).
    args.extend(["--compression", "--size", "1000", "--depth", "2"]);
    let (json, finished) = successful_bench(&server.url, &args);
    let compression = &json["compression"];
    assert_eq!(compression["requested"], true, "{json:#}");
    assert_eq!(compression["negotiated"], true, "{json:#}");
    assert_eq!(compression["negotiated_connections"], 4, "{json:#}");
    assert!(
        compression["server_answer"]
            .as_str()
            .is_some_and(|answer| answer.starts_with("permessage-deflate")),
        "{json:#}"
    );
    assert!(number(&json, "/compression/compressed_messages_received") > 0.0);
    assert!(number(&json, "/messages/received") > 0.0);
    // 1000-byte messages in turn, so that none repeats within 32 KiB and connections
    // are out of step (the most there are: 64): the server's echoes of all of them had
    // the right length.
    assert_eq!(json["parameters"]["payload_variants"], 64, "{json:#}");
    assert_no_errors(&json);
    assert!(
        finished.stdout.contains("compression: negotiated"),
        "{finished:#?}"
    );
}

#[test]
fn compression_declined_by_the_server_is_reported() {
    let server = echo_server(&["--no-compression"]);
    let mut args = SHORT_RUN.to_vec();
    args.extend(["--compression", "--size", "1000"]);
    let (json, finished) = successful_bench(&server.url, &args);
    assert_eq!(json["compression"]["requested"], true);
    assert_eq!(json["compression"]["negotiated"], false, "{json:#}");
    assert_eq!(json["compression"]["negotiated_connections"], 0);
    assert!(number(&json, "/messages/received") > 0.0);
    assert_no_errors(&json);
    assert!(
        finished.stdout.contains("compression: not negotiated"),
        "{finished:#?}"
    );
}

#[test]
fn connect_rate_cycles_connections() {
    let server = echo_server(&[]);
    let pid = server.process.id().to_string();
    let mut args = SHORT_RUN.to_vec();
    args.push("--connect-rate");
    if cfg!(target_os = "linux") {
        args.extend(["--server-pid", &pid]);
    }
    let (json, finished) = successful_bench(&server.url, &args);
    assert_eq!(json["mode"], "connect_rate");
    assert_eq!(json["parameters"]["payload_variants"], Value::Null);
    let completed = number(&json, "/cycles/completed");
    assert!(completed > 0.0, "{json:#}");
    assert!(number(&json, "/cycles/per_s") > 0.0);
    assert_no_errors(&json);
    assert_latency_ordered(&json);
    assert_eq!(json["messages"], Value::Null);
    assert!(finished.stdout.contains("cycles/s"), "{finished:#?}");
    if cfg!(target_os = "linux") {
        // Accepting, upgrading and closing connections for a second takes CPU time.
        let seconds = number(&json, "/server_cpu_seconds");
        assert!(seconds > 0.0, "{json:#}");
        assert!(number(&json, "/server_cpu_percent") > 0.0, "{json:#}");
        let per_cycle = number(&json, "/server_cpu_per_cycle_us");
        let expected = seconds * 1e6 / completed;
        assert!(
            (per_cycle - expected).abs() <= expected * 0.001 + 0.001,
            "{per_cycle} µs per cycle, expected {expected}: {json:#}"
        );
        assert_eq!(json["server_cpu_per_message_us"], Value::Null, "{json:#}");
        assert!(number(&json, "/server_rss_bytes") > 0.0, "{json:#}");
        assert!(
            finished.stdout.contains(" µs per cycle; RSS "),
            "{finished:#?}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn idle_connections_report_the_servers_memory() {
    let server = echo_server(&[]);
    let pid = server.process.id().to_string();
    let (json, finished) = successful_bench(
        &server.url,
        &["--idle", "50", "--server-pid", &pid, "--duration", "1"],
    );
    assert_eq!(json["mode"], "idle");
    assert_eq!(number(&json, "/connections/opened"), 50.0, "{json:#}");
    assert_eq!(number(&json, "/idle/held"), 50.0, "{json:#}");
    assert!(number(&json, "/idle/server_rss_before_bytes") > 0.0);
    assert!(number(&json, "/idle/server_rss_after_bytes") > 0.0);
    assert_eq!(
        json["server_rss_bytes"], json["idle"]["server_rss_after_bytes"],
        "{json:#}"
    );
    // The server's CPU time is not measured while idle.
    assert_eq!(json["server_cpu_seconds"], Value::Null, "{json:#}");
    // Growth can be anything (even negative); it must be a number.
    number(&json, "/idle/server_rss_per_connection_bytes");
    assert_eq!(json["parameters"]["idle"], 50);
    // Without --warm or --compression, no message goes either way.
    assert_eq!(json["parameters"]["warm"], false, "{json:#}");
    assert_eq!(json["idle"]["warmed"], false, "{json:#}");
    assert_eq!(number(&json, "/idle/messages_sent"), 0.0, "{json:#}");
    assert_eq!(number(&json, "/idle/echoes_received"), 0.0, "{json:#}");
    assert_eq!(json["idle"]["warm_s"], Value::Null, "{json:#}");
    assert_no_errors(&json);
    assert_eq!(json["close_codes"]["1000"], 50, "{json:#}");
    assert!(finished.stdout.contains("per connection"), "{finished:#?}");
    assert!(
        finished
            .stdout
            .contains("warmed:      no: no message exchanged"),
        "{finished:#?}"
    );
}

/// Asserts that an idle run exchanged one message on each of its `count` connections.
fn assert_warmed(json: &Value, finished: &Finished, count: f64, size: &str) {
    assert_eq!(json["mode"], "idle");
    assert_eq!(number(json, "/connections/opened"), count, "{json:#}");
    assert_eq!(number(json, "/idle/held"), count, "{json:#}");
    assert_eq!(json["parameters"]["warm"], true, "{json:#}");
    assert_eq!(json["idle"]["warmed"], true, "{json:#}");
    assert_eq!(number(json, "/idle/messages_sent"), count, "{json:#}");
    assert_eq!(number(json, "/idle/echoes_received"), count, "{json:#}");
    assert!(number(json, "/idle/warm_s") >= 0.0, "{json:#}");
    assert_no_errors(json);
    assert_eq!(json["close_codes"]["1000"], count, "{json:#}");
    let line = format!(
        "warmed:      yes: {count} of {count} connections echoed one {size}-byte text message"
    );
    assert!(finished.stdout.contains(&line), "{line} in {finished:#?}");
}

/// `bench --idle COUNT --compression --size 4096` against `server`, held `duration`, with
/// the server's memory measured.
#[cfg(target_os = "linux")]
fn idle_with_compression(server: &Serve, count: &str, duration: &str) -> (Value, Finished) {
    let pid = server.process.id().to_string();
    successful_bench(
        &server.url,
        &[
            "--idle",
            count,
            "--compression",
            "--size",
            "4096",
            "--server-pid",
            &pid,
            "--duration",
            duration,
        ],
    )
}

#[cfg(target_os = "linux")]
#[test]
fn idle_connections_with_compression_exchange_a_message_first() {
    let server = echo_server(&[]);
    let (json, finished) = idle_with_compression(&server, "50", "1");
    assert_warmed(&json, &finished, 50.0, "4,096");
    assert_eq!(json["parameters"]["size"], 4096, "{json:#}");
    let compression = &json["compression"];
    assert_eq!(compression["negotiated"], true, "{json:#}");
    assert_eq!(compression["negotiated_connections"], 50, "{json:#}");
    // 4 KiB of text is over the server's threshold: every echo came compressed, so
    // the server compressed and decompressed on every connection.
    assert_eq!(
        number(&json, "/compression/compressed_messages_received"),
        50.0,
        "{json:#}"
    );
    // The server holds a compressor and a decompressor per connection now: its memory
    // grew.
    assert!(
        number(&json, "/idle/server_rss_per_connection_bytes") > 0.0,
        "{json:#}"
    );
}

/// `serve --compression-mem-level` sets what each connection's compressor holds: after one
/// compressed message each way, memLevel 9 (zlib-rs, whose hash table alone is 128 KiB)
/// keeps far more per connection than memLevel 1 (C zlib: 23 KiB in all). Out-of-range
/// levels are refused.
#[cfg(target_os = "linux")]
#[test]
fn compression_mem_level_sets_the_servers_memory_per_connection() {
    let per_connection = |mem_level: &str| {
        let server = echo_server(&["--compression-mem-level", mem_level]);
        let (json, _) = idle_with_compression(&server, "40", "0.5");
        assert_eq!(
            number(&json, "/compression/compressed_messages_received"),
            40.0,
            "{json:#}"
        );
        number(&json, "/idle/server_rss_per_connection_bytes")
    };
    let small = per_connection("1");
    let large = per_connection("9");
    assert!(
        large > small + 64.0 * 1024.0,
        "bytes per connection: memLevel 1 {small}, memLevel 9 {large}"
    );
    for (option, value) in [
        ("--compression-mem-level", "0"),
        ("--compression-mem-level", "10"),
        ("--compression-level", "10"),
    ] {
        let finished = Sockjet::run(&["serve", "127.0.0.1:0", option, value]);
        assert!(!finished.status.success(), "{option} {value}: {finished:?}");
        assert!(finished.stderr.contains(option), "{finished:?}");
    }
}

#[test]
fn idle_connections_warm_without_compression() {
    let server = echo_server(&[]);
    let (json, finished) = successful_bench(
        &server.url,
        &["--idle", "20", "--warm", "--size", "300", "--duration", "1"],
    );
    assert_warmed(&json, &finished, 20.0, "300");
    assert_eq!(json["compression"]["requested"], false, "{json:#}");
    assert_eq!(
        number(&json, "/compression/compressed_messages_received"),
        0.0,
        "{json:#}"
    );
    // Without --server-pid the server's memory is not read.
    assert_eq!(json["idle"]["server_rss_per_connection_bytes"], Value::Null);
}

#[test]
fn idle_messages_not_echoed_time_out_as_errors() {
    // Reads everything, answers nothing.
    let (_runtime, url) =
        scripted_server(|mut ws| async move { while let Ok(Some(_)) = ws.recv().await {} });
    let (json, finished) = successful_bench(&url, &["--idle", "3", "--warm", "--duration", "0.1"]);
    assert_eq!(json["idle"]["warmed"], true, "{json:#}");
    assert_eq!(number(&json, "/idle/messages_sent"), 3.0, "{json:#}");
    assert_eq!(number(&json, "/idle/echoes_received"), 0.0, "{json:#}");
    // Each message had 10 s for its echo, and the connections stayed open.
    assert!(number(&json, "/idle/warm_s") >= 10.0, "{json:#}");
    assert_eq!(
        number(&json, "/errors/by_kind/echo_timeout"),
        3.0,
        "{json:#}"
    );
    assert_eq!(number(&json, "/idle/held"), 3.0, "{json:#}");
    assert!(
        finished
            .stdout
            .contains("warmed:      yes: 0 of 3 connections echoed"),
        "{finished:#?}"
    );
}

#[test]
fn open_loop_keeps_the_rate() {
    let server = echo_server(&[]);
    let mut args = SHORT_RUN.to_vec();
    args.extend(["--rate", "200"]);
    let (json, _) = successful_bench(&server.url, &args);
    let received = number(&json, "/messages/received");
    let seconds = number(&json, "/measured_s");
    let expected = 200.0 * seconds;
    assert!(
        (0.5 * expected..=1.5 * expected).contains(&received),
        "{received} messages in {seconds} s at 200/s: {json:#}"
    );
    assert_eq!(json["parameters"]["rate"], 200.0);
    assert_eq!(json["parameters"]["depth"], Value::Null);
    assert_no_errors(&json);
    assert_latency_ordered(&json);
}

#[test]
fn a_closed_port_is_one_error_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let finished = bench(&url, &SHORT_RUN);
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    let line = finished
        .stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stderr ends with a newline: {finished:#?}"));
    assert!(!line.contains('\n'), "one line: {finished:#?}");
    assert!(
        line.starts_with(&format!("sockjet: cannot connect to {url}: ")),
        "{line}"
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(line.ends_with("(all 4 connections failed)"), "{line}");
    assert!(finished.stdout.is_empty(), "{finished:#?}");
    assert!(finished.json.is_none(), "no report without a run");
}

#[test]
fn bad_arguments_are_refused() {
    let server_url = "ws://127.0.0.1:1";
    for args in [
        &["--duration", "soon"][..],
        &["--conns", "0"],
        &["--rate", "100", "--depth", "2"],
        &["--idle", "5", "--connect-rate"],
        &["--idle", "5", "--depth", "2"],
        &["--warm"],
        &["--server-pid", "-1"],
        // --floor is for the echo load against a plain TCP echo.
        &["--floor", "--connect-rate"],
        &["--floor", "--idle", "5"],
        &["--floor", "--compression"],
        // Load processes are for idle connections only, and at least one.
        &["--processes", "2"],
        &["--idle", "5", "--processes", "0"],
    ] {
        let finished = bench(server_url, args);
        assert_eq!(finished.status.code(), Some(2), "{args:?}: {finished:#?}");
    }
    // Idle connections that send nothing have no message size: refused before any
    // connection is made.
    let finished = bench(server_url, &["--idle", "5", "--size", "100"]);
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    assert!(
        finished.stderr.contains("need --warm or --compression"),
        "{finished:#?}"
    );
}

#[test]
fn a_server_pid_that_cannot_be_read_is_one_error_line() {
    let server = echo_server(&[]);
    // Above the kernel's largest pid (2^22), so no such process.
    let pid = "4294967295";
    let mut args = SHORT_RUN.to_vec();
    args.extend(["--server-pid", pid]);
    let finished = bench(&server.url, &args);
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    assert!(
        finished.stderr.starts_with(&format!(
            "sockjet: cannot read the CPU time and memory of process {pid} (--server-pid): "
        )),
        "{finished:#?}"
    );
    assert_eq!(finished.stderr.lines().count(), 1, "{finished:#?}");
    assert!(finished.stdout.is_empty(), "{finished:#?}");
    assert!(finished.json.is_none(), "no report without a run");
}

#[test]
fn echoes_of_the_wrong_length_are_errors() {
    let (_runtime, url) = scripted_server(|mut ws| async move {
        while let Ok(Some(message)) = ws.recv().await {
            let mut reply = message.into_bytes().to_vec();
            reply.push(b'!');
            if ws.send(Message::binary(reply)).await.is_err() {
                break;
            }
        }
    });
    let (json, _) = successful_bench(&url, &SHORT_RUN);
    assert!(
        number(&json, "/errors/by_kind/length_mismatch") > 0.0,
        "{json:#}"
    );
    assert!(
        json["errors"]["first"]
            .as_str()
            .is_some_and(|first| first.contains("16-byte message had 17 bytes")),
        "{json:#}"
    );
}

#[test]
fn a_server_closing_during_the_run_is_counted() {
    let (_runtime, url) = scripted_server(|mut ws| async move {
        for _ in 0..10 {
            match ws.recv().await {
                Ok(Some(message)) => {
                    let _ = ws.send(message).await;
                }
                _ => return,
            }
        }
        let _ = ws.close(CloseCode::GOING_AWAY, "enough").await;
    });
    let (json, finished) = successful_bench(&url, &SHORT_RUN);
    assert_eq!(
        number(&json, "/errors/by_kind/closed_by_server"),
        4.0,
        "{json:#}"
    );
    assert_eq!(json["close_codes"]["1001"], 4, "{json:#}");
    assert!(
        finished.stdout.contains("closed_by_server 4"),
        "{finished:#?}"
    );
}

/// Runs a plain TCP echo in the test process, the kernel's floor: a real opening handshake,
/// then every byte read is written back unchanged (the client's own masked frames). Returns
/// its runtime (keep it alive for the test) and URL.
fn raw_tcp_echo() -> (tokio::runtime::Runtime, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn echo(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut buffer = vec![0; 64 * 1024];
        let mut filled = 0;
        let head_len = loop {
            let read = stream.read(&mut buffer[filled..]).await?;
            if read == 0 {
                return Ok(());
            }
            filled += read;
            if let Some(at) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = std::str::from_utf8(&buffer[..head_len]).expect("an ASCII request head");
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim())
            })
            .expect("a Sec-WebSocket-Key");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            sockjet_proto::handshake::accept_key(key.as_bytes())
        );
        stream.write_all(response.as_bytes()).await?;
        stream.write_all(&buffer[head_len..filled]).await?;
        loop {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                return Ok(());
            }
            stream.write_all(&buffer[..read]).await?;
        }
    }

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the TCP echo");
    let url = format!("ws://{}", listener.local_addr().expect("its address"));
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(echo(stream));
        }
    });
    (runtime, url)
}

#[test]
fn floor_runs_against_a_plain_tcp_echo() {
    let (_runtime, url) = raw_tcp_echo();
    for size in ["16", "70000"] {
        let mut args = SHORT_RUN.to_vec();
        args.extend(["--floor", "--depth", "4", "--size", size, "--binary"]);
        let started = Instant::now();
        let (json, finished) = successful_bench(&url, &args);
        let took = started.elapsed();
        assert!(number(&json, "/messages/received") > 0.0, "{json:#}");
        assert_no_errors(&json);
        assert_latency_ordered(&json);
        assert_eq!(json["parameters"]["floor"], true, "{json:#}");
        // Each connection's close frame came back (echoed, masked) and ended it.
        assert_eq!(json["close_codes"]["1000"], 4, "{json:#}");
        // 1.2 s of run: the close waited for no timeout (3 s) nor for the end of TCP.
        assert!(
            took < Duration::from_secs(4),
            "took {took:?}: {finished:#?}"
        );
        assert!(
            finished.stdout.contains("raw TCP echo (--floor)"),
            "{finished:#?}"
        );
    }
    // Without --floor, the echo of our own masked frames is a protocol error.
    let (json, _) = successful_bench(
        &url,
        &["--conns", "2", "--duration", "0.3", "--warmup", "0"],
    );
    assert_eq!(number(&json, "/errors/by_kind/protocol"), 2.0, "{json:#}");
    assert!(
        json["errors"]["first"]
            .as_str()
            .is_some_and(|first| first.contains("masked frame from the server")),
        "{json:#}"
    );
    assert_eq!(json["parameters"]["floor"], false, "{json:#}");
}

/// Checks a fan-out report's counts: every message reached every subscriber, and the
/// deliveries add up.
fn assert_full_fanout(json: &Value, subscribers: f64, depth: f64) {
    assert_eq!(json["mode"], "fanout", "{json:#}");
    assert_no_errors(json);
    assert_latency_ordered(json);
    let fanout = &json["fanout"];
    assert_eq!(number(fanout, "/subscribers"), subscribers, "{json:#}");
    assert_eq!(number(fanout, "/messages_timed_out"), 0.0, "{json:#}");
    assert_eq!(number(fanout, "/missing_deliveries"), 0.0, "{json:#}");
    assert_eq!(number(fanout, "/late_deliveries"), 0.0, "{json:#}");
    assert!(number(fanout, "/probes") >= 1.0, "{json:#}");
    let completed = number(fanout, "/messages_completed");
    assert!(completed > 0.0, "{json:#}");
    // Deliveries count by when they were read, messages by when their last subscriber
    // read them: they differ by the messages in flight at either end of the window.
    let deliveries = number(fanout, "/deliveries");
    assert!(
        (deliveries - completed * subscribers).abs() <= 2.0 * depth * subscribers,
        "{deliveries} deliveries for {completed} messages: {json:#}"
    );
    assert_eq!(number(json, "/latency_us/count"), deliveries, "{json:#}");
    assert!(number(fanout, "/deliveries_per_s") > 0.0, "{json:#}");
    let completion = number(fanout, "/completion_us/max");
    assert!(
        completion >= number(fanout, "/completion_us/p50"),
        "{json:#}"
    );
    assert_eq!(json["close_codes"]["1000"], subscribers + 1.0, "{json:#}");
}

#[test]
fn fanout_reaches_every_subscriber_of_a_broadcast_server() {
    let server = serve_in_mode("--broadcast", &[]);
    let pid = server.process.id().to_string();
    for payload in ["--text", "--binary"] {
        let (json, finished) = successful_bench(
            &server.url,
            &[
                "--fanout",
                "50",
                "--depth",
                "4",
                "--duration",
                "1",
                "--warmup",
                "0.2",
                payload,
                "--server-pid",
                &pid,
            ],
        );
        assert_full_fanout(&json, 50.0, 4.0);
        let parameters = &json["parameters"];
        assert_eq!(parameters["fanout"], 50);
        assert_eq!(parameters["conns"], 51);
        assert_eq!(parameters["size"], 64);
        assert_eq!(parameters["depth"], 4);
        assert_eq!(parameters["fanout_timeout_s"], 2.0);
        assert_eq!(parameters["payload"], &payload[2..]);
        assert_eq!(number(&json, "/connections/opened"), 51.0);
        #[cfg(target_os = "linux")]
        assert!(
            number(&json, "/server_cpu_per_delivery_us") > 0.0,
            "{json:#}"
        );
        let summary = &finished.stdout;
        assert!(
            summary.starts_with(&format!(
                "sockjet bench {}: fan-out, 1 publisher to 50 subscribers, 64-byte",
                server.url
            )),
            "{summary}"
        );
        for label in [
            "deliveries:",
            "missing:     0 deliveries",
            "fan-out:",
            "latency:",
        ] {
            assert!(summary.contains(label), "{label} in {summary}");
        }
    }
}

#[test]
fn fanout_open_loop_keeps_the_publishers_rate() {
    let server = serve_in_mode("--broadcast", &[]);
    let (json, _) = successful_bench(
        &server.url,
        &[
            "--fanout",
            "20",
            "--rate",
            "200",
            "--size",
            "16",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    let sent = number(&json, "/fanout/messages_sent");
    let expected = 200.0 * number(&json, "/measured_s");
    assert!(
        (0.5 * expected..=1.5 * expected).contains(&sent),
        "{sent} messages at 200/s: {json:#}"
    );
    assert_eq!(json["parameters"]["rate"], 200.0);
    assert_eq!(json["parameters"]["depth"], Value::Null);
    // An open loop has up to rate x latency messages in flight.
    assert_full_fanout(&json, 20.0, 200.0);
}

/// A broadcast server that leaves one subscriber out of every tenth message (from the
/// sixth on): the tool must count those deliveries as missing, after the timeout.
#[test]
fn fanout_counts_deliveries_a_server_drops_as_missing() {
    use std::sync::{Arc, Mutex};
    let members: Arc<Mutex<Vec<sockjet::Sender>>> = Arc::default();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (_runtime, url) = scripted_server(move |mut ws| {
        let (members, received) = (Arc::clone(&members), Arc::clone(&received));
        async move {
            members.lock().unwrap().push(ws.sender());
            while let Ok(Some(message)) = ws.recv().await {
                let number = received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let all = members.lock().unwrap().clone();
                // The first member that is not the sender (the publisher) is left out.
                let left_out = (number % 10 == 5)
                    .then(|| all.iter().position(|member| member.id() != ws.id()))
                    .flatten();
                let receivers = all
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| Some(*index) != left_out)
                    .map(|(_, member)| member);
                let _ = sockjet::broadcast(receivers, message);
            }
        }
    });
    let (json, _) = successful_bench(
        &url,
        &[
            "--fanout",
            "5",
            "--depth",
            "2",
            "--fanout-timeout",
            "0.1",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    let fanout = &json["fanout"];
    let timed_out = number(fanout, "/messages_timed_out");
    assert!(timed_out > 0.0, "{json:#}");
    // One subscriber missed each.
    assert_eq!(number(fanout, "/missing_deliveries"), timed_out, "{json:#}");
    assert!(
        number(fanout, "/messages_completed") > timed_out,
        "{json:#}"
    );
    assert_eq!(number(fanout, "/late_deliveries"), 0.0, "{json:#}");
    assert_no_errors(&json);
}

/// Two servers that share their connections (as two processes would through Redis):
/// the publisher on one, the subscribers on the other.
#[test]
fn fanout_publisher_on_another_server_reaches_the_subscribers() {
    use std::sync::{Arc, Mutex};
    let members: Arc<Mutex<Vec<sockjet::Sender>>> = Arc::default();
    let relay = |members: Arc<Mutex<Vec<sockjet::Sender>>>| {
        move |mut ws: sockjet::Connection| {
            let members = Arc::clone(&members);
            async move {
                members.lock().unwrap().push(ws.sender());
                while let Ok(Some(message)) = ws.recv().await {
                    let all = members.lock().unwrap().clone();
                    let _ = sockjet::broadcast(&all, message);
                }
            }
        }
    };
    let (_first, publisher_url) = scripted_server(relay(Arc::clone(&members)));
    let (_second, subscribers_url) = scripted_server(relay(members));
    let (json, finished) = successful_bench(
        &subscribers_url,
        &[
            "--fanout",
            "10",
            "--depth",
            "2",
            "--publisher-url",
            &publisher_url,
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
    );
    assert_full_fanout(&json, 10.0, 2.0);
    assert_eq!(json["parameters"]["publisher_url"], publisher_url.as_str());
    assert_eq!(number(&json, "/connections/opened"), 11.0, "{json:#}");
    assert!(
        finished
            .stdout
            .contains(&format!("publisher on {publisher_url}")),
        "{finished:#?}"
    );
}

#[test]
fn fanout_against_an_echo_server_is_one_error_line() {
    let server = echo_server(&[]);
    let finished = bench(&server.url, &["--fanout", "3", "--duration", "1"]);
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    assert!(
        finished
            .stderr
            .contains("broadcasts do not reach every subscriber"),
        "{finished:#?}"
    );
    assert!(finished.json.is_none(), "{finished:#?}");
}

#[test]
fn fanout_arguments_are_checked() {
    for (args, why) in [
        (&["--fanout", "3", "--size", "15"][..], "at least 16"),
        (&["--fanout", "0"][..], "at least 1"),
        (&["--fanout", "3", "--idle", "3"][..], "cannot be used with"),
        (
            &["--fanout", "3", "--compression"][..],
            "cannot be used with",
        ),
        (&["--fanout-timeout", "1"][..], "--fanout"),
    ] {
        let finished = bench("ws://127.0.0.1:9", args);
        assert!(!finished.status.success(), "{args:?}: {finished:#?}");
        assert!(finished.stderr.contains(why), "{args:?}: {finished:#?}");
    }
}

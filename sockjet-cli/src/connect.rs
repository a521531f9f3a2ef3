//! `sockjet connect`: an interactive client, like `python -m websockets URL`.

use std::{
    error::Error as _,
    io::{self, BufRead as _},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::Args;
use sockjet::{
    Backoff, ClientBuilder, CloseCode, Connection, ConnectionClosed, Error, ErrorKind, Sender,
};
use tokio::sync::{Mutex, mpsc};

use crate::{
    ConnectionArgs, Failure, client_args::ClientArgs, format, io_message, parse_seconds, print_line,
};

/// How many lines read from stdin may wait for the connection to send them; beyond it the
/// reading thread blocks, so a fast pipe cannot fill memory.
const INPUT_QUEUE: usize = 16;

/// Arguments of `sockjet connect`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// WebSocket URL to connect to, e.g. ws://127.0.0.1:8765/chat or wss://example.com/feed.
    #[arg(value_name = "URL")]
    url: String,
    /// Connection options.
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Request, TLS and network options.
    #[command(flatten)]
    client: ClientArgs,
    /// Reconnect when the connection fails or the server goes away (close codes 1001,
    /// 1006, 1011, 1012, 1013, network errors, HTTP 5xx), waiting longer after each
    /// failure; a line on stdout tells each wait. Ends when the server closes normally
    /// (1000) or with an application code, or at the end of input.
    #[arg(long, help_heading = "Reconnection")]
    reconnect: bool,
    /// Longest wait between reconnection attempts, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "90",
        value_parser = parse_delay,
        requires = "reconnect",
        help_heading = "Reconnection"
    )]
    max_reconnect_delay: Duration,
}

/// Lines read from stdin, shared by the connections of a reconnecting session.
type Lines = Arc<Mutex<mpsc::Receiver<String>>>;

/// Connects, then relays stdin lines to the server and server messages to stdout until
/// the connection closes (and, with `--reconnect`, reconnects as long as it should).
pub(crate) async fn run(args: ConnectArgs) -> Result<ExitCode, Failure> {
    let builder = ClientBuilder::new(args.url.as_str()).connection(args.connection.config());
    let builder = args.client.apply(builder)?;
    if args.reconnect {
        return run_reconnecting(builder, &args.url, args.max_reconnect_delay).await;
    }
    let ws = builder
        .connect()
        .await
        .map_err(|error| connect_failure(&args.url, &error))?;
    print_line(&format!("Connected to {}.", args.url))?;
    let lines = Arc::new(Mutex::new(read_stdin_lines()?));
    let end = session(ws, &lines).await?;
    exit_status(end)
}

/// Runs connections one after the other, as `ClientBuilder::reconnecting` decides.
async fn run_reconnecting(
    builder: ClientBuilder,
    url: &str,
    max_delay: Duration,
) -> Result<ExitCode, Failure> {
    let retry_url = url.to_owned();
    let mut connections = builder
        .reconnecting()
        .backoff(Backoff::default().max_delay(max_delay))
        .on_retry(move |why, delay| {
            // Stdout failing shows at the next line the session prints.
            let _ = print_line(&retry_line(&retry_url, why, delay));
        });
    let mut lines = None;
    let mut end = None;
    loop {
        // Once a session has listened for Ctrl-C, the signal no longer ends the process
        // by itself: a wait between connections must listen too.
        let next = tokio::select! {
            next = connections.next() => next,
            interrupted = tokio::signal::ctrl_c() => {
                if interrupted.is_ok() {
                    return Err(Failure::new("interrupted while reconnecting"));
                }
                connections.next().await
            }
        };
        match next {
            Ok(Some(ws)) => {
                print_line(&format!("Connected to {url}."))?;
                let lines = match &lines {
                    Some(lines) => Arc::clone(lines),
                    None => lines
                        .insert(Arc::new(Mutex::new(read_stdin_lines()?)))
                        .clone(),
                };
                end = session(ws, &lines).await?;
            }
            Ok(None) => return exit_status(end),
            Err(error) => return Err(connect_failure(url, &error)),
        }
    }
}

/// The line printed before waiting to reconnect.
fn retry_line(url: &str, why: &Error, delay: Duration) -> String {
    let wait = format!("reconnecting in {:.1} s.", delay.as_secs_f64());
    match why.kind() {
        // The "Connection closed" line already said why.
        ErrorKind::Closed => format!("Reconnecting in {:.1} s.", delay.as_secs_f64()),
        _ => format!("{}; {wait}", connect_failure(url, why).0),
    }
}

/// Relays messages both ways on one connection until it closes, then prints how it
/// ended; returns the error that ended it, if any.
async fn session(ws: Connection, lines: &Lines) -> Result<Option<Error>, Failure> {
    // Sending runs in its own task so that a send waiting on a slow server never stops
    // this task from receiving: with both in one loop, a server that stops reading until
    // its replies are read would deadlock with us.
    let (mut ws, sender) = ws.split();
    let input = tokio::spawn(send_input(Arc::clone(lines), sender));
    let end = loop {
        match ws.recv().await {
            Ok(Some(message)) => {
                if let Err(failure) = print_line(&format!("< {}", format::message(&message))) {
                    input.abort();
                    return Err(failure);
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    input.abort();

    let closed = ws.closed().await;
    print_line(&format!("Connection closed: {}.", describe_close(&closed)))?;
    Ok(end)
}

/// The exit status after the last connection ended with `end`.
fn exit_status(end: Option<Error>) -> Result<ExitCode, Failure> {
    match end {
        None => Ok(ExitCode::SUCCESS),
        // The close line says it all when the server simply closed with an unusual code.
        Some(error) if error.kind() == ErrorKind::Closed => Ok(ExitCode::FAILURE),
        Some(error) => {
            // Without the trailing "(sent 1009 ...)": the close line above already says it.
            let text = error.to_string();
            let closed_suffix = error.closed().map(|closed| format!(" ({closed})"));
            let text = closed_suffix
                .and_then(|suffix| text.strip_suffix(&suffix))
                .unwrap_or(&text);
            Err(Failure::new(text))
        }
    }
}

/// Parses the longest reconnection delay; 0 reconnects at once.
fn parse_delay(value: &str) -> Result<Duration, String> {
    parse_seconds(value).map(|delay| delay.unwrap_or(Duration::ZERO))
}

/// Sends each input line as a text message; at the end of input or on Ctrl-C, closes the
/// connection with 1000, as `python -m websockets` does.
///
/// The lines are shared with the connections that come after this one: the lock is held
/// while this connection lasts, and released when its task is aborted.
async fn send_input(lines: Lines, sender: Sender) {
    let mut lines = lines.lock().await;
    let interrupt = async {
        // Without a signal handler, Ctrl-C keeps its default effect: the process ends.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    // A failed send means the connection is closing; the receiving side
                    // reports how it ended.
                    if sender.send(line).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            () = &mut interrupt => break,
        }
    }
    // Closing fails only if the connection already closed; the receiving side reports it.
    let _ = sender.close(CloseCode::NORMAL_CLOSURE, "").await;
}

/// Reads stdin lines on a dedicated thread; the channel closes at the end of input.
///
/// Not `tokio::io::stdin`: its blocking read cannot be cancelled and would keep the
/// runtime from shutting down after the server closes, until the user pressed Enter. A
/// plain thread blocked in `read` does not hold up the exit of the process.
fn read_stdin_lines() -> Result<mpsc::Receiver<String>, Failure> {
    let (lines, receiver) = mpsc::channel(INPUT_QUEUE);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                // A read error ends the input like Ctrl-D: there is nothing else to send.
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if lines.blocking_send(text.to_owned()).is_err() {
                    break;
                }
            }
        })
        .map_err(|error| Failure::new(format!("cannot read stdin: {}", io_message(&error))))?;
    Ok(receiver)
}

/// Describes how the connection ended: the close code and reason the server sent, e.g.
/// `1000 (OK)` or `1001 (going away) server shutting down`.
///
/// When the server sent none, says what we sent, if anything: after a protocol error the
/// client sends e.g. 1009 and drops the connection without waiting, and "1006" alone would
/// hide why.
fn describe_close(closed: &ConnectionClosed) -> String {
    match (&closed.rcvd, &closed.sent) {
        (Some(frame), _) if !frame.reason.is_empty() => {
            // The reason comes from the server and goes to a terminal.
            format!("{} {}", frame.code, format::escape_text(&frame.reason))
        }
        (Some(frame), _) => frame.code.to_string(),
        (None, Some(_)) => closed.to_string(),
        (None, None) => CloseCode::ABNORMAL_CLOSURE.to_string(),
    }
}

/// The one-line message for a URL that [`sockjet::parse_url`] refused.
pub(crate) fn invalid_url(url: &str, error: &Error) -> Failure {
    let source = error.source().map(ToString::to_string).unwrap_or_default();
    // The library's message starts with the URL; show it quoted instead, so that an empty
    // or odd-looking URL is visible as such.
    let why = source.strip_prefix(&format!("{url}: ")).unwrap_or(&source);
    Failure::new(format!("invalid URL {url:?}: {why}"))
}

/// The one-line message for a failed connection attempt.
fn connect_failure(url: &str, error: &Error) -> Failure {
    let source = error.source().map(ToString::to_string).unwrap_or_default();
    let message = match error.kind() {
        ErrorKind::InvalidUrl => return invalid_url(url, error),
        ErrorKind::Handshake => match error.handshake_error() {
            Some(handshake) => format!("handshake failed: {handshake}"),
            None => error.to_string(),
        },
        _ => {
            let why = match error.source().and_then(|source| source.downcast_ref()) {
                Some(io_error) => io_message(io_error),
                None if source.is_empty() => error.to_string(),
                None => source,
            };
            format!("cannot connect to {url}: {why}")
        }
    };
    Failure::new(message)
}

#[cfg(test)]
mod tests {
    use sockjet::CloseFrame;

    use super::*;

    #[test]
    fn close_is_described_by_the_received_frame() {
        let mut closed = ConnectionClosed::default();
        assert_eq!(describe_close(&closed), "1006 (abnormal closure)");
        closed.sent = Some(CloseFrame::new(CloseCode::MESSAGE_TOO_BIG, ""));
        assert_eq!(
            describe_close(&closed),
            "sent 1009 (message too big); no close frame received"
        );
        closed.rcvd = Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""));
        assert_eq!(describe_close(&closed), "1000 (OK)");
        closed.rcvd = Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye\x1b[2J"));
        assert_eq!(describe_close(&closed), r"1001 (going away) bye\x1b[2J");
    }

    #[test]
    fn connect_failures_are_one_line() {
        let refused = Error::from(io::Error::from_raw_os_error(111));
        let Failure(message) = connect_failure("ws://127.0.0.1:1", &refused);
        assert!(
            message.starts_with("cannot connect to ws://127.0.0.1:1: "),
            "{message}"
        );
        assert!(!message.contains("os error"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

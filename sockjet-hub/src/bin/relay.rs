//! `sockjet-hub-relay`: a WebSocket server of rooms, shared between processes through
//! Redis when given `--redis`. Used by the hub's cross-process tests, and handy to try the
//! hub by hand:
//!
//! ```text
//! sockjet-hub-relay --listen 127.0.0.1:9001 --redis redis://127.0.0.1:6379 &
//! sockjet-hub-relay --listen 127.0.0.1:9002 --redis redis://127.0.0.1:6379 &
//! sockjet connect ws://127.0.0.1:9001/room/lobby   # what you type here...
//! sockjet connect ws://127.0.0.1:9002/room/lobby   # ...appears here, and back
//! ```
//!
//! A connection to `/room/NAME` joins topic NAME (taken as it is in the path, without
//! percent-decoding); every message it sends is published to the room: to every member on
//! every relay sharing the Redis server, the sender included (so that each member sees the
//! room's messages in the same order), unless `--exclude-sender`. Any other path is closed
//! with 1008. The first line on stdout is `listening on ws://ADDRESS`; logs go to stderr
//! (`RUST_LOG` filters them).

use std::{
    io::{self, IsTerminal, Write},
    net::SocketAddr,
    process::ExitCode,
};

use clap::Parser;
use sockjet::{CloseCode, Connection};
use sockjet_hub::{Hub, RedisBackend};
use tracing_subscriber::EnvFilter;

/// Serves WebSocket rooms at /room/NAME; with --redis, rooms are shared with every relay
/// using the same Redis server.
#[derive(Debug, Parser)]
#[command(name = "sockjet-hub-relay", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Redis URL (redis://HOST:PORT) through which to share rooms with other relays.
    #[arg(long)]
    redis: Option<String>,
    /// Prefix of the Redis channel names.
    #[arg(long, default_value = "sockjet:room:")]
    namespace: String,
    /// Do not send a member's messages back to it.
    #[arg(long)]
    exclude_sender: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sockjet-hub-relay: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::builder()
        .parse_lossy(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,sockjet_hub=info".into()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut hub = Hub::builder();
    if let Some(url) = &args.redis {
        hub = hub.backend(RedisBackend::new(url)?.namespace(&args.namespace));
    }
    let hub = hub.build();
    let server = sockjet::Server::bind(args.listen).await?;
    {
        // Tests wait for this line: print it, flushed, before anything else on stdout.
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on ws://{}", server.local_addr())?;
        stdout.flush()?;
    }
    let exclude_sender = args.exclude_sender;
    server
        .serve(move |ws| serve_member(hub.clone(), ws, exclude_sender))
        .await?;
    Ok(())
}

async fn serve_member(hub: Hub, mut ws: Connection, exclude_sender: bool) {
    let Some(room) = ws.path().strip_prefix("/room/").map(str::to_owned) else {
        let _ = ws
            .close(CloseCode::POLICY_VIOLATION, "expected /room/NAME")
            .await;
        return;
    };
    let me = ws.sender();
    if let Err(error) = hub.join(&room, &me) {
        let _ = ws
            .close(CloseCode::POLICY_VIOLATION, &error.to_string())
            .await;
        return;
    }
    while let Ok(Some(message)) = ws.recv().await {
        // A full queue or a lost Redis is counted by the hub; the member goes on.
        let _ = match exclude_sender {
            true => hub.publish_except(&room, message, me.id()),
            false => hub.publish(&room, message),
        };
    }
    hub.leave_all(me.id());
}

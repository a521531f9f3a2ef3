//! Shared command-line handling for the peer echo servers in `src/bin/`.
//!
//! Every server takes `ADDR [--compression]`, prints `listening on ws://ADDR` once bound and
//! echoes text as text and binary as binary; see README.md.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::exit;

/// Largest message every Rust peer accepts: 64 MiB (the benchmarks send up to 1 MiB).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Parsed command line of an echo server.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Whether `--compression` (permessage-deflate) was given.
    pub compression: bool,
}

/// Parses `NAME ADDR [--compression]`, exiting with status 2 on bad usage, or on
/// `--compression` when `library` has no permessage-deflate (`supports_compression`).
pub fn parse_args(library: &str, supports_compression: bool) -> Args {
    let mut argv = std::env::args();
    let name = argv.next().unwrap_or_else(|| "echo".into());
    let usage = || -> ! {
        eprintln!("usage: {name} ADDR [--compression]   (e.g. {name} 127.0.0.1:9001)");
        exit(2)
    };
    let mut addr = None;
    let mut compression = false;
    for arg in argv {
        match arg.as_str() {
            "--compression" => compression = true,
            "-h" | "--help" => usage(),
            _ if addr.is_none() => match arg.parse::<SocketAddr>() {
                Ok(parsed) => addr = Some(parsed),
                Err(err) => {
                    eprintln!("{name}: bad address {arg:?}: {err}");
                    usage()
                }
            },
            _ => usage(),
        }
    }
    let Some(addr) = addr else { usage() };
    if compression && !supports_compression {
        eprintln!("{name}: --compression: {library} does not support permessage-deflate");
        exit(2);
    }
    Args { addr, compression }
}

/// Binds `addr` with tokio, exiting with status 1 if that fails, and prints
/// `listening on ws://ADDR` (the bound address) to stdout, flushed.
pub async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {addr}: {err}");
            exit(1)
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server; the harness may not read it.
    let _ = writeln!(stdout, "listening on ws://{bound}");
    let _ = stdout.flush();
    listener
}

/// Accepts the next connection with `TCP_NODELAY` set (as every peer here does, like
/// sockjet's server), retrying after transient accept errors such as `EMFILE`.
pub async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(err) => {
                eprintln!("accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

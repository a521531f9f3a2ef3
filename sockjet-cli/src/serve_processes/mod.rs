//! `sockjet serve --processes N`: N worker processes serve one port, each with a listener
//! bound with SO_REUSEPORT, and the kernel spreads new connections over the listeners.
//!
//! Why processes: the hard RLIMIT_NOFILE caps the sockets of one process, not of the
//! machine, so several processes hold more connections than one can (the way nginx workers
//! and uWebSockets deployments do it). Each worker is this same executable, run with the
//! supervisor's own arguments plus the hidden `--worker-of PID --worker-addr ADDR`: the
//! options apply alike in every worker, and the worker runs the ordinary single-process
//! server, bound with SO_REUSEPORT.
//!
//! Linux only: elsewhere SO_REUSEPORT does not spread connections over listeners (BSDs give
//! them all to one), and PR_SET_PDEATHSIG, which stops the workers when the supervisor is
//! killed, does not exist.
//!
//! Files: `supervisor.rs` starts the workers, prints the URL once they all listen, forwards
//! signals and stops them all when one dies; `worker.rs` is the worker's side.

#[cfg(target_os = "linux")]
mod supervisor;
#[cfg(target_os = "linux")]
mod worker;

use std::{ffi::OsString, net::SocketAddr};

#[cfg(target_os = "linux")]
pub(crate) use supervisor::supervise;
#[cfg(target_os = "linux")]
pub(crate) use worker::{become_worker, reuse_port_listener};

/// The most worker processes `--processes` accepts: far more than any machine has cores,
/// and few enough that a typo (`--processes 20000`) is refused rather than obeyed.
pub(crate) const MAX_PROCESSES: u16 = 256;

/// The arguments of a worker: the supervisor's own (`args`, without the program name), so
/// that every option applies alike, and the hidden worker options. These go before a `--`
/// if there is one: after it they would be read as ADDR.
pub(crate) fn worker_args(
    args: impl IntoIterator<Item = OsString>,
    supervisor: u32,
    addr: SocketAddr,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let at = args
        .iter()
        .position(|arg| arg == "--")
        .unwrap_or(args.len());
    let worker = [
        "--worker-of".into(),
        supervisor.to_string().into(),
        "--worker-addr".into(),
        addr.to_string().into(),
    ];
    args.splice(at..at, worker);
    args
}

/// The message for `--processes` where it cannot work.
#[cfg(not(target_os = "linux"))]
const LINUX_ONLY: &str =
    "--processes needs Linux: elsewhere SO_REUSEPORT does not spread connections over processes";

/// `--processes` outside Linux: refused.
#[cfg(not(target_os = "linux"))]
pub(crate) async fn supervise(
    _: &crate::serve::ServeArgs,
) -> Result<std::process::ExitCode, crate::Failure> {
    Err(crate::Failure::new(LINUX_ONLY))
}

/// A worker outside Linux: refused (no supervisor starts one there).
#[cfg(not(target_os = "linux"))]
pub(crate) fn become_worker(_: u32) -> Result<(), crate::Failure> {
    Err(crate::Failure::new(LINUX_ONLY))
}

/// A worker's listener outside Linux: refused (no supervisor starts one there).
#[cfg(not(target_os = "linux"))]
pub(crate) fn reuse_port_listener(_: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        LINUX_ONLY,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn worker_options_follow_the_supervisors_arguments() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4321));
        assert_eq!(
            worker_args(strings(&["-v", "serve", "--processes", "3"]), 77, addr),
            strings(&[
                "-v",
                "serve",
                "--processes",
                "3",
                "--worker-of",
                "77",
                "--worker-addr",
                "127.0.0.1:4321"
            ])
        );
    }

    #[test]
    fn worker_options_go_before_a_double_dash() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4321));
        assert_eq!(
            worker_args(strings(&["serve", "--", "127.0.0.1:0"]), 77, addr),
            strings(&[
                "serve",
                "--worker-of",
                "77",
                "--worker-addr",
                "127.0.0.1:4321",
                "--",
                "127.0.0.1:0"
            ])
        );
    }
}

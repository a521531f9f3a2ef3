//! The worker's side of `--processes`: its listener, bound with SO_REUSEPORT, and its tie
//! to the supervisor's life.

use std::{io, net::SocketAddr};

use nix::{sys::signal::Signal, unistd::getppid};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::Failure;

/// Makes this process a worker of `supervisor`: it gets SIGTERM, and so shuts down
/// gracefully, when the supervisor dies. A supervisor killed with SIGKILL cannot stop its
/// workers itself, and a worker left behind would hold the port and its connections.
///
/// # Errors
///
/// The request failed, or the supervisor has already died (then no signal would come).
pub(crate) fn become_worker(supervisor: u32) -> Result<(), Failure> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(|error| {
        Failure::new(format!("cannot ask for the parent-death signal: {error}"))
    })?;
    // Checked after the request: a supervisor that died before it is not watched.
    if u32::try_from(getppid().as_raw()) != Ok(supervisor) {
        return Err(Failure::new(format!(
            "worker of process {supervisor}, which has already exited"
        )));
    }
    Ok(())
}

/// A TCP socket bound to `addr`, not yet listening, that other sockets of this user can
/// bind too (SO_REUSEPORT): the supervisor's, which holds the port, and the workers'.
/// SO_REUSEADDR as well, as `TcpListener::bind` sets it: a restart must not wait for the
/// previous run's connections in TIME_WAIT. Close-on-exec (socket2 sets it), so that the
/// supervisor's socket does not leak into its workers.
pub(super) fn reuse_port_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The worker's listener on the supervisor's address, in the SO_REUSEPORT group that
/// shares the port.
///
/// # Errors
///
/// The address cannot be bound, or the socket cannot be set up.
pub(crate) fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = reuse_port_socket(addr)?;
    // The backlog of `TcpListener::bind`, which a single-process server uses.
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

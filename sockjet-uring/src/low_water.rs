//! The socket's receive low-water mark (`SO_RCVLOWAT`), raised while a large frame is
//! received so that the kernel completes the receive once the frame is in, not once per
//! TCP segment: each partial arrival would otherwise wake the worker to run the receive's
//! retry. The same policy as the tokio engine's (`sockjet`'s socket.rs).

use std::os::fd::RawFd;

/// A frame still missing at least this many bytes is waited for with the mark raised.
const LOW_WATER_MIN: usize = 64 * 1024;

/// The highest mark set: the kernel lets the receive buffer grow to hold a raised mark,
/// so a larger frame is waited for in parts of this size.
const LOW_WATER_MAX: usize = 4 << 20;

/// Sets the mark of `fd` for a receive that waits for `missing` bytes of a frame (0: not
/// inside a frame), where `low_water` is the mark as last set (0 or 1: the default, wake
/// on any byte). The mark never exceeds what the frame misses (RFC 6455 §5.4: nothing,
/// not even a control frame, comes inside a frame), so it waits only for bytes the peer
/// must send anyway; the kernel still completes on EOF, errors and a full buffer.
pub(crate) fn wait_for_rest_of_frame(fd: RawFd, low_water: &mut u32, missing: usize) {
    let current = *low_water as usize;
    let wanted = if missing >= LOW_WATER_MIN {
        if current > 1 && current <= missing {
            return;
        }
        missing.min(LOW_WATER_MAX) as u32
    } else {
        if current <= 1 {
            return;
        }
        1
    };
    let value = wanted as libc::c_int;
    // SAFETY: setsockopt on the connection's own socket, with a live int of the size given.
    #[allow(unsafe_code)]
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        *low_water = wanted;
    }
}

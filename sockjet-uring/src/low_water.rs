//! The socket's receive low-water mark (`SO_RCVLOWAT`), raised while a large frame is
//! received so that the kernel completes the receive once the frame is in, not once per
//! TCP segment: each partial arrival would otherwise wake the worker to run the receive's
//! retry. The policy is the core's ([`sockjet_proto::receive_low_water`]), as for the
//! tokio engine.

use std::os::fd::RawFd;

/// Sets the mark of `fd` for a receive that waits for `missing` bytes of a frame (0: not
/// inside a frame), where `low_water` is the mark as last set.
pub(crate) fn wait_for_rest_of_frame(fd: RawFd, low_water: &mut u32, missing: usize) {
    let Some(wanted) = sockjet_proto::receive_low_water(*low_water, missing) else {
        return;
    };
    let value = libc::c_int::try_from(wanted).unwrap_or(libc::c_int::MAX);
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

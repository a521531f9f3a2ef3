//! When to raise a socket's receive low-water mark (Linux `SO_RCVLOWAT`) for the rest of a
//! large frame: a policy, computed here so that every driver applies the same one; the
//! system call is the driver's.

/// A frame still missing at least this many bytes is waited for with the mark raised.
const LOW_WATER_MIN: usize = 64 * 1024;

/// The highest mark asked for: the kernel lets the receive buffer grow to hold a raised
/// mark, so a larger frame is waited for in parts of this size.
const LOW_WATER_MAX: usize = 4 << 20;

/// The receive low-water mark to set, if it should change, for a connection whose current
/// mark is `current` (0 or 1: the default, wake on any byte) and whose frame being
/// received still misses `missing` bytes ([`Protocol::frame_bytes_missing`]).
///
/// Raised, the kernel wakes the reader only once the rest of a large frame has arrived,
/// not once per TCP segment of it: a 1 MiB message then costs a few reads and wake-ups
/// instead of ten or more. Nothing can happen on the connection before those bytes come
/// (RFC 6455 §5.4: control frames go between frames, never inside one), and the mark never
/// exceeds what the frame still misses, so the bytes it waits for are bytes the peer must
/// send anyway; the kernel still wakes the reader at EOF, on an error, and when its
/// receive buffer or window runs short. Back to 1 once the frame is in, so that a 2-byte
/// header wakes the reader again.
///
/// [`Protocol::frame_bytes_missing`]: crate::Protocol::frame_bytes_missing
///
/// ```
/// use sockjet_proto::receive_low_water;
/// assert_eq!(receive_low_water(1, 1 << 20), Some(1 << 20));
/// assert_eq!(receive_low_water(1 << 20, 900_000), Some(900_000));
/// assert_eq!(receive_low_water(900_000, 950_000), None); // still no more than missing
/// assert_eq!(receive_low_water(900_000, 10), Some(1));
/// assert_eq!(receive_low_water(1, 10), None);
/// ```
pub fn receive_low_water(current: u32, missing: usize) -> Option<u32> {
    let current = current as usize;
    if missing >= LOW_WATER_MIN {
        // Keep a raised mark while it is no more than what the frame misses.
        if current > 1 && current <= missing {
            return None;
        }
        Some(missing.min(LOW_WATER_MAX) as u32)
    } else if current <= 1 {
        None
    } else {
        Some(1)
    }
}

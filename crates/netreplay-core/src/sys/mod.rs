//! OS specifics: memory maps with the SIGBUS guard, socket options and
//! batched sends, the clock and timer slack. Depends on nothing above it.

pub(crate) mod mapguard;
pub(crate) mod socket;
pub(crate) mod time;

pub use mapguard::GuardedMap;
#[cfg(target_os = "linux")]
pub use socket::send_many;
pub use socket::set_multicast_if_v4_index;
pub use time::{
    may_be_realtime, monotonic_of_realtime, now_ns, set_normal_priority, set_precise_timer_slack,
    set_realtime_priority, set_timing_slice, REALTIME_PRIORITY,
};

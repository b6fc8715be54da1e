//! The wall clock, in Unix seconds: the one place it is read. Policy takes `now` as an argument
//! and never reads a clock itself.

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

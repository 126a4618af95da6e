//! The clock that makes nfmon rows comparable with Microscope traces.
//!
//! The shim's clock anchors pair the TSC with `CLOCK_MONOTONIC`
//! (`collector::clock::Calibration` fits ticks → `CLOCK_MONOTONIC` ns), the
//! DPDK testbed's `truth.json` gives fault times in `CLOCK_MONOTONIC` ns, and
//! so does every sampled row ([`crate::schema::Row::mono_ns`]: the reading
//! taken with the interval's end snapshot). A diagnosis time, a ground-truth
//! time and a sample time on one host are therefore directly comparable.

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: clock_gettime only writes into the timespec we own and pass
    // by unique reference; CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_in_nanoseconds() {
        let a = mono_ns();
        let t = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = mono_ns();
        let el = t.elapsed().as_nanos() as u64;
        assert!(b > a);
        // Same clock as Instant on Linux: the two elapsed times agree within 5 ms.
        assert!((b - a).abs_diff(el) < 5_000_000, "{} vs {el}", b - a);
        assert!(b - a >= 20_000_000);
    }
}

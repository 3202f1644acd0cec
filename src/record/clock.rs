//! The trace clock: what an event's timestamp counts. `rdtsc` where the CPU
//! says its time-stamp counter is invariant (constant rate, running in
//! every power state) and rtcore has calibrated it against
//! CLOCK_MONOTONIC_RAW (NTP does not slew it); CLOCK_MONOTONIC otherwise, or when
//! `RTCORE_DEBUG=trace_clock=monotonic` asks for it. Either is shifted
//! right so that one tick is 16-32 ns (Go's tracer uses 64 ns): timestamp
//! deltas then fit one byte between close events. The trace's clock
//! information (`clock info`: ticks per second) lets the reader convert
//! ticks to nanoseconds.
//!
//! Invariants:
//! - The parameters (source, origin, shift) are set by the tracer before
//!   it publishes a trace's first generation and are not changed while it
//!   is recorded; an emitter reads them after reading the generation in
//!   its gate (Acquire), so it sees the ones of the generation it records.
//! - Timestamps only order events of one thread's stream; across threads,
//!   order comes from sequence numbers, never from clocks (TSCs of
//!   different CPUs may disagree by a little).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::base::clock::monotonic_ns;

/// Calibration needs at least this long between its two readings.
const CALIBRATION_NS: u64 = 10_000_000;

static FORCE_MONOTONIC: AtomicBool = AtomicBool::new(false);
/// The calibration's first reading (TSC, ns); 0: not taken.
static CAL_TSC: AtomicU64 = AtomicU64::new(0);
static CAL_NS: AtomicU64 = AtomicU64::new(0);

/// The current trace's parameters.
static USE_TSC: AtomicBool = AtomicBool::new(false);
static ORIGIN_RAW: AtomicU64 = AtomicU64::new(0);
static SHIFT: AtomicU32 = AtomicU32::new(0);

/// Use CLOCK_MONOTONIC whatever the CPU offers (`RTCORE_DEBUG`).
pub fn force_monotonic(v: bool) {
    FORCE_MONOTONIC.store(v, Relaxed);
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn rdtsc() -> u64 {
    0
}

/// Does the CPU report an invariant TSC (CPUID 0x8000_0007, EDX bit 8)?
/// Asked once: under a hypervisor `cpuid` traps, tens of microseconds.
#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    static INVARIANT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INVARIANT.get_or_init(|| {
        use core::arch::x86_64::__cpuid;
        // SAFETY: `cpuid` exists on every x86-64 CPU; the extended leaf is
        // only read when the CPU says it has it.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
        }
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

/// CLOCK_MONOTONIC_RAW in ns: the hardware's time, without NTP's slewing,
/// what a TSC is calibrated against.
fn raw_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// A TSC reading and the CLOCK_MONOTONIC_RAW time at it (the middle of two
/// clock reads less than 2 µs apart when possible).
fn pair() -> (u64, u64) {
    let mut best = (0, 0, u64::MAX);
    for _ in 0..5 {
        let a = raw_ns();
        let t = rdtsc();
        let b = raw_ns();
        let w = b.saturating_sub(a);
        if w < best.2 {
            best = (t, a + w / 2, w);
        }
        if w < 2_000 {
            break;
        }
    }
    (best.0, best.1)
}

/// Take calibration's first reading, if not taken (rtcore's start calls
/// it, so that the first trace 10 ms later can use the TSC).
pub fn calibration_start() {
    if CAL_NS.load(Relaxed) == 0 && invariant_tsc() {
        let (t, ns) = pair();
        if CAL_NS.compare_exchange(0, ns, Relaxed, Relaxed).is_ok() {
            CAL_TSC.store(t, Relaxed);
        }
    }
}

/// Before a trace start (outside its stopped world): if the TSC is
/// usable but its calibration is younger than 10 ms, sleep for the rest,
/// so the trace gets the TSC rather than CLOCK_MONOTONIC for its whole
/// life. Only a trace started within 10 ms of rtcore's own start waits.
pub fn ensure_calibrated() {
    if FORCE_MONOTONIC.load(Relaxed) || !invariant_tsc() {
        return;
    }
    calibration_start();
    let since = raw_ns().saturating_sub(CAL_NS.load(Relaxed));
    if since < CALIBRATION_NS {
        std::thread::sleep(std::time::Duration::from_nanos(
            CALIBRATION_NS - since + 100_000,
        ));
    }
}

/// The TSC's rate in Hz, if it is usable and calibrated.
fn tsc_hz() -> Option<u64> {
    if FORCE_MONOTONIC.load(Relaxed) || !invariant_tsc() {
        return None;
    }
    calibration_start();
    let (t0, ns0) = (CAL_TSC.load(Relaxed), CAL_NS.load(Relaxed));
    let (t1, ns1) = pair();
    let dns = ns1.checked_sub(ns0)?;
    if dns < CALIBRATION_NS || t0 == 0 || t1 <= t0 {
        return None;
    }
    let hz = (u128::from(t1 - t0) * 1_000_000_000 / u128::from(dns)) as u64;
    // Anything outside 100 MHz..20 GHz is not a TSC we understand.
    (100_000_000..20_000_000_000).contains(&hz).then_some(hz)
}

/// The shift that makes `hz >> shift` between 31.25 and 62.5 MHz (a tick
/// of 16-32 ns).
fn shift_for(hz: u64) -> u32 {
    let mut s = 0;
    while (hz >> (s + 1)) >= 31_250_000 {
        s += 1;
    }
    s
}

/// What a trace's clock is: written into each generation's `clock info`.
#[derive(Clone, Copy, Debug)]
pub struct TraceClock {
    pub ticks_per_second: u64,
    pub tsc: bool,
}

/// Choose the clock for a new trace and set its origin to now. Called by
/// the tracer before it publishes the trace's first generation.
pub fn begin_trace() -> TraceClock {
    let (tsc, hz) = match tsc_hz() {
        Some(hz) => (true, hz),
        None => (false, 1_000_000_000),
    };
    let shift = shift_for(hz);
    USE_TSC.store(tsc, Relaxed);
    SHIFT.store(shift, Relaxed);
    ORIGIN_RAW.store(if tsc { rdtsc() } else { monotonic_ns() }, Relaxed);
    TraceClock {
        ticks_per_second: hz >> shift,
        tsc,
    }
}

/// Ticks since the current trace's origin (0 before it, as a TSC read on
/// another CPU can be).
#[inline(always)]
pub fn now() -> u64 {
    let raw = if USE_TSC.load(Relaxed) {
        rdtsc()
    } else {
        monotonic_ns()
    };
    raw.saturating_sub(ORIGIN_RAW.load(Relaxed)) >> SHIFT.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_16_to_32_ns() {
        for hz in [1_000_000_000u64, 2_450_000_000, 3_900_000_000, 100_000_000] {
            let t = hz >> shift_for(hz);
            assert!((31_250_000..62_500_000).contains(&t), "{hz}: {t}");
        }
    }

    #[test]
    fn the_tsc_rate_matches_the_monotonic_clock() {
        if !invariant_tsc() {
            // Then no trace uses it.
            assert_eq!(tsc_hz(), None);
            assert!(!begin_trace().tsc);
            return;
        }
        calibration_start();
        std::thread::sleep(std::time::Duration::from_millis(15));
        let hz = tsc_hz().expect("calibrated after 15 ms");
        // Ticks over 20 ms of CLOCK_MONOTONIC_RAW agree with the rate to 0.1%.
        let (t0, n0) = pair();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (t1, n1) = pair();
        let expect = u128::from(n1 - n0) * u128::from(hz) / 1_000_000_000;
        let got = u128::from(t1 - t0);
        let err = got.abs_diff(expect) as f64 / expect as f64;
        assert!(err < 1e-3, "rate {hz}: {got} ticks, expected {expect}");
    }
}

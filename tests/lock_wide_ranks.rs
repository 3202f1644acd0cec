#![cfg(not(loom))]
//! The fast paths check and record a lock themselves only while every rank
//! held and wanted has an id below 64 (one word of the held ranks), and
//! leave the rest to the full check out of line (`Held::push_fast`). This
//! process (its own test binary, so
//! the rank ids are predictable) declares one rank early (id below 64) and
//! others after enough filler ranks that their ids are 64 or more, then
//! crosses the two in every order, through mutexes and rwlocks: each
//! forbidden order is reported, each allowed one is not.

use std::ffi::CString;

use rtcore::ffi::general::rtc_lockrank_mode::RTC_LOCKRANK_OFF;
use rtcore::ffi::general::rtc_lockrank_mode::RTC_LOCKRANK_QUEUE;
use rtcore::ffi::mutex::{rtc_mutex_init, rtc_mutex_lock, rtc_mutex_unlock};
use rtcore::ffi::ranks::{
    rtc_lockrank_next_report, rtc_lockrank_report_free, rtc_lockrank_set_mode,
    rtc_lockrank_violations, rtc_ranks_load,
};
use rtcore::ffi::rwlock::{
    rtc_rwlock_init, rtc_rwlock_rdlock, rtc_rwlock_unlock, rtc_rwlock_wrlock,
};
use rtcore::lock::mutex::rtc_mutex;
use rtcore::lock::rwlock::rtc_rwlock;
use rtcore::status::rtc_status::RTC_OK;

fn violations() -> u64 {
    let mut n = 0;
    assert_eq!(rtc_lockrank_violations(&mut n), RTC_OK);
    n
}

fn drain_reports() {
    loop {
        let mut r = std::ptr::null_mut();
        assert_eq!(rtc_lockrank_next_report(&mut r), RTC_OK);
        if r.is_null() {
            break;
        }
        rtc_lockrank_report_free(r);
    }
}

fn load(src: &str) {
    let c = CString::new(src).unwrap();
    assert_eq!(
        rtc_ranks_load(c.as_ptr(), c"wide.ranks".as_ptr()),
        RTC_OK,
        "{src}"
    );
}

fn id(name: &str) -> u32 {
    rtcore::ranks::global().lookup(name).expect("declared")
}

fn mutex(rank: &str) -> Box<rtc_mutex> {
    // SAFETY: all-zero is a valid rtc_mutex.
    let mut m: Box<rtc_mutex> = Box::new(unsafe { std::mem::zeroed() });
    let r = CString::new(rank).unwrap();
    assert_eq!(rtc_mutex_init(&mut *m, r.as_ptr(), r.as_ptr()), RTC_OK);
    m
}

fn rwlock(rank: &str) -> Box<rtc_rwlock> {
    // SAFETY: all-zero is a valid rtc_rwlock.
    let mut l: Box<rtc_rwlock> = Box::new(unsafe { std::mem::zeroed() });
    let r = CString::new(rank).unwrap();
    assert_eq!(rtc_rwlock_init(&mut *l, r.as_ptr(), r.as_ptr()), RTC_OK);
    l
}

#[test]
fn ranks_past_the_first_word_are_checked_on_the_fast_paths() {
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
    drain_reports();
    load("NONE < low;");
    let mut filler = String::new();
    for i in 0..70 {
        filler.push_str(&format!("NONE < filler_{i};\n"));
    }
    load(&filler);
    // high_after may follow low; high_apart is unordered with it.
    load("low < high_after;\nNONE < high_apart;");
    assert!(
        id("low") < 64,
        "low's id {} is not in the first word",
        id("low")
    );
    assert!(id("high_after") >= 64 && id("high_apart") >= 64);

    let mut low = mutex("low");
    let mut after = mutex("high_after");
    let mut apart = mutex("high_apart");
    let mut low_rw = rwlock("low");

    // Every (first, then, allowed) pair, twice each (the second time the
    // locks are resolved and the fast path runs).
    let (lo, af, ap): (*mut rtc_mutex, *mut rtc_mutex, *mut rtc_mutex) =
        (&mut *low, &mut *after, &mut *apart);
    for _ in 0..2 {
        for (first, then, allowed, what) in [
            (lo, af, true, "low then high_after"),
            (af, lo, false, "high_after then low"),
            (lo, ap, false, "low then high_apart"),
            (ap, lo, false, "high_apart then low"),
        ] {
            let before = violations();
            assert_eq!(rtc_mutex_lock(first), RTC_OK);
            assert_eq!(rtc_mutex_lock(then), RTC_OK);
            let expect = before + u64::from(!allowed);
            assert_eq!(violations(), expect, "{what}");
            assert_eq!(rtc_mutex_unlock(then), RTC_OK);
            assert_eq!(rtc_mutex_unlock(first), RTC_OK);
        }
        // A read lock of rank low while holding high_after: forbidden.
        let before = violations();
        assert_eq!(rtc_mutex_lock(&mut *after), RTC_OK);
        assert_eq!(rtc_rwlock_rdlock(&mut *low_rw), RTC_OK);
        assert_eq!(violations(), before + 1, "high_after then low (read)");
        assert_eq!(rtc_rwlock_unlock(&mut *low_rw), RTC_OK);
        assert_eq!(rtc_mutex_unlock(&mut *after), RTC_OK);
        // And allowed the other way.
        let before = violations();
        assert_eq!(rtc_rwlock_rdlock(&mut *low_rw), RTC_OK);
        assert_eq!(rtc_mutex_lock(&mut *after), RTC_OK);
        assert_eq!(violations(), before, "low (read) then high_after");
        assert_eq!(rtc_mutex_unlock(&mut *after), RTC_OK);
        assert_eq!(rtc_rwlock_unlock(&mut *low_rw), RTC_OK);
        drain_reports();
    }

    // With checking off an rwlock is still recorded (its unlock tells a
    // read hold from the record): a wide-rank read lock goes out of line,
    // a narrow one on top of it too (a wide rank is held), and releasing
    // them out of order leaves the lock free for a writer.
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_OFF as i32), RTC_OK);
    let mut apart_rw = rwlock("high_apart");
    for _ in 0..2 {
        assert_eq!(rtc_rwlock_rdlock(&mut *apart_rw), RTC_OK);
        assert_eq!(rtc_rwlock_rdlock(&mut *low_rw), RTC_OK);
        assert_eq!(rtc_rwlock_unlock(&mut *apart_rw), RTC_OK);
        assert_eq!(rtc_rwlock_wrlock(&mut *apart_rw), RTC_OK, "read hold left");
        assert_eq!(rtc_rwlock_unlock(&mut *apart_rw), RTC_OK);
        assert_eq!(rtc_rwlock_unlock(&mut *low_rw), RTC_OK);
        assert_eq!(rtc_rwlock_wrlock(&mut *low_rw), RTC_OK, "read hold left");
        assert_eq!(rtc_rwlock_unlock(&mut *low_rw), RTC_OK);
    }
    assert_eq!(rtc_lockrank_set_mode(RTC_LOCKRANK_QUEUE as i32), RTC_OK);
}

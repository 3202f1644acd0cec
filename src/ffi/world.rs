//! The world's exports: attach/detach, safepoints, blocking regions,
//! stop-the-world and maxprocs. See docs/world.md.

use std::os::raw::c_char;

use super::{boundary, required_str};
use crate::lifecycle;
use crate::status::rtc_status;
use crate::world::{self, TState};

/// Thread states as `rtc_thread_state` reports them.
#[repr(i32)]
#[allow(non_camel_case_types)]
pub enum rtc_thread_state_t {
    /// The calling thread is not attached.
    RTC_THREAD_UNATTACHED = 0,
    /// Holds a P and runs.
    RTC_THREAD_RUNNING = 1,
    /// Waits for a P.
    RTC_THREAD_RUNNABLE = 2,
    /// Inside a blocking region.
    RTC_THREAD_BLOCKING = 3,
    /// Parked inside rtcore (a contended lock, a condition).
    RTC_THREAD_WAITING = 4,
}

/// Threads and Ps by state, as `rtc_world_census` reports them.
#[repr(C)]
pub struct rtc_census {
    /// `sizeof(rtc_census)`; set it before the call.
    pub size: u32,
    /// 1 while the world is stopped (or being stopped).
    pub stopped: u32,
    pub threads_running: u32,
    pub threads_runnable: u32,
    pub threads_blocking: u32,
    pub threads_waiting: u32,
    /// Ps created so far.
    pub procs: u32,
    pub procs_idle: u32,
    pub procs_running: u32,
    pub procs_syscall: u32,
    pub procs_stopped: u32,
    /// Stops completed since start.
    pub stops: u64,
}

/// Attach the calling thread to the world, with a name for reports (copied;
/// NULL uses the OS thread name). The thread gets a P, waiting for one if
/// maxprocs are all busy or a stop is in force. Its rtcore id (64-bit, never
/// reused) is written to `*out_id` if `out_id` is not NULL. A thread that
/// exits attached is detached by rtcore (leaving a blocking region and
/// restarting a world it holds stopped first).
///
/// With maxprocs 0 (unlimited) rtcore creates up to 65,536 Ps; when that
/// many attached threads are all running, the attach is refused with
/// `RTC_ERR_WRONG_STATE` rather than left waiting for a P.
///
/// May park (waiting for a P). Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if
/// already attached, on the hook thread (hooks run outside the world), or
/// at the 65,536-P cap as above;
/// `RTC_ERR_WOULD_DEADLOCK` if this thread holds the world
/// stopped; `RTC_ERR_INVALID_ARGUMENT` for a non-UTF-8 name;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_thread_attach(name: *const c_char, out_id: *mut u64) -> rtc_status {
    boundary("rtc_thread_attach", || {
        let out_id = super::opt_out(out_id, "out_id", "rtc_thread_attach")?;
        lifecycle::enter()?;
        let name = if name.is_null() {
            crate::ident::name()
        } else {
            required_str(name, "name", "rtc_thread_attach")?.to_string()
        };
        let id = world::world().attach(&name)?;
        if let Some(out_id) = out_id {
            out_id.set(id);
        }
        Ok(())
    })
}

/// Detach the calling thread: it must be RUNNING (not inside a blocking
/// region) and must not hold the world stopped. Its P goes to a waiting
/// thread or becomes idle.
///
/// Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` (not attached, blocking, holding
/// the world stopped); `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_thread_detach() -> rtc_status {
    boundary("rtc_thread_detach", || {
        lifecycle::enter()?;
        world::world().detach()
    })
}

/// Write the calling thread's rtcore id to `*out_id` (any thread has one,
/// attached or not; ids are never reused).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_thread_id(out_id: *mut u64) -> rtc_status {
    boundary("rtc_thread_id", || {
        let out_id = super::out(out_id, "out_id", "rtc_thread_id")?;
        out_id.set(crate::ident::current_id());
        Ok(())
    })
}

/// Write the calling thread's state (an `rtc_thread_state_t`) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_thread_state(out: *mut i32) -> rtc_status {
    boundary("rtc_thread_state", || {
        let out = super::out(out, "out", "rtc_thread_state")?;
        let v = match world::current().map(|r| r.state()) {
            None | Some(TState::Dead) => 0,
            Some(s) => s as i32,
        };
        out.set(v);
        Ok(())
    })
}

/// A safepoint: if a stop is pending the thread parks here until the world
/// restarts; if another thread waits for a P, maxprocs is reached and this
/// thread has held its P for at least a quantum (1 ms), it yields its P and
/// waits for one. Call it regularly in long loops. A no-op
/// for unattached threads. Never hold an rtcore inner lock here (user
/// mutexes are fine: a stop never waits for user critical sections).
///
/// May park. Returns `RTC_OK`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_safepoint() -> rtc_status {
    boundary("rtc_safepoint", || {
        lifecycle::enter()?;
        world::safepoint();
        world::deliver_preemption();
        Ok(())
    })
}

/// Enter a blocking region (a read, a sleep, a foreign wait): the thread
/// becomes BLOCKING and its P SYSCALL. A stop does not wait for it. Honours a
/// pending stop first (it is a safepoint). `reason` (copied; may be NULL)
/// names the wait in diagnostics.
///
/// May park. Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if not attached or
/// already inside a region; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_enter_blocking(reason: *const c_char) -> rtc_status {
    boundary("rtc_enter_blocking", || {
        lifecycle::enter()?;
        let reason = if reason.is_null() {
            None
        } else {
            Some(required_str(reason, "reason", "rtc_enter_blocking")?)
        };
        let r = world::world().enter_blocking(reason);
        world::deliver_preemption();
        r
    })
}

/// Leave a blocking region. Fast path: the P is still SYSCALL and is taken
/// back. Otherwise (a stop claimed it) the thread becomes RUNNABLE and waits
/// until the world runs and a P is free.
///
/// May park. Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if not attached or not
/// inside a region; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_exit_blocking() -> rtc_status {
    boundary("rtc_exit_blocking", || {
        lifecycle::enter()?;
        world::world().exit_blocking()
    })
}

/// Stop the world: claim every idle and SYSCALL P, ask RUNNING threads to
/// stop at their next safepoint, and wait for them. Never waits for
/// BLOCKING or WAITING threads, nor for user critical sections. Callable
/// from any thread, attached or not; if another stop is in force, waits for
/// it to end first. A thread that holds up the stop past the threshold
/// (`rtc_world_set_safepoint_threshold_ns`, default 100 ms) is named on
/// stderr. The calling thread keeps its P; only it may start the world.
///
/// May park. Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if this thread already
/// holds the world stopped (stops do not nest); `RTC_ERR_WOULD_DEADLOCK`
/// from a hook (a stopped thread may hold what the hook needs, and trace
/// start/stop wait for hooks); `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_stop_the_world(reason: *const c_char) -> rtc_status {
    boundary("rtc_stop_the_world", || {
        lifecycle::enter()?;
        let reason = if reason.is_null() {
            "user"
        } else {
            required_str(reason, "reason", "rtc_stop_the_world")?
        };
        world::stop_the_world(reason)
    })
}

/// Restart a world this thread stopped: every stopped thread gets its P back
/// (or waits for one if maxprocs shrank) and runs again.
///
/// Returns `RTC_OK`; `RTC_ERR_WRONG_STATE` if the world is not stopped or
/// another thread stopped it; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_start_the_world() -> rtc_status {
    boundary("rtc_start_the_world", || {
        lifecycle::enter()?;
        world::start_the_world()
    })
}

/// `RTC_OK` if the calling thread holds the world stopped, else
/// `RTC_ERR_WRONG_STATE` with a message saying why not.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_assert_world_stopped() -> rtc_status {
    boundary("rtc_assert_world_stopped", || {
        lifecycle::enter()?;
        world::assert_world_stopped()
    })
}

/// Set how many threads may run at once (0: unlimited, the default), like
/// GOMAXPROCS, and write the previous value to `*out_previous` (may be NULL).
/// More Ps are handed to waiting threads at once; when fewer are allowed,
/// threads on the extra Ps give them up at their next safepoint. Callable
/// during a stop (takes effect for the restart).
///
/// Returns `RTC_OK`; `RTC_ERR_INVALID_ARGUMENT` above 1024;
/// `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_set_maxprocs(n: u32, out_previous: *mut u32) -> rtc_status {
    boundary("rtc_set_maxprocs", || {
        let out_previous = super::opt_out(out_previous, "out_previous", "rtc_set_maxprocs")?;
        lifecycle::enter()?;
        let old = world::world().set_maxprocs(n as usize)?;
        if let Some(out_previous) = out_previous {
            out_previous.set(old as u32);
        }
        Ok(())
    })
}

/// Write the current maxprocs (0: unlimited) to `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_get_maxprocs(out: *mut u32) -> rtc_status {
    boundary("rtc_get_maxprocs", || {
        lifecycle::enter()?;
        let out = super::out(out, "out", "rtc_get_maxprocs")?;
        out.set(world::world().maxprocs() as u32);
        Ok(())
    })
}

/// Set the time-to-safepoint threshold after which a stop names the threads
/// holding it up (default 100 ms).
#[unsafe(no_mangle)]
pub extern "C" fn rtc_world_set_safepoint_threshold_ns(ns: u64) -> rtc_status {
    boundary("rtc_world_set_safepoint_threshold_ns", || {
        lifecycle::enter()?;
        world::set_tts_threshold(ns);
        Ok(())
    })
}

/// Fill `*out` (whose `size` field the caller sets to `sizeof(rtc_census)`)
/// with threads and Ps by state. A snapshot: it may be stale at once.
///
/// Returns `RTC_OK`; `RTC_ERR_NULL`; `RTC_ERR_INVALID_ARGUMENT` for a wrong
/// `size`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_world_census(out: *mut rtc_census) -> rtc_status {
    boundary("rtc_world_census", || {
        lifecycle::enter()?;
        super::checked_ptr(out, "out", "rtc_world_census")?;
        // SAFETY: non-NULL; `size` is read alone first.
        let size = unsafe { (*out).size } as usize;
        if size != size_of::<rtc_census>() {
            return Err(crate::status::Error::new(
                crate::status::RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "rtc_world_census: out->size is {size}, expected sizeof(rtc_census) = {}",
                    size_of::<rtc_census>()
                ),
            ));
        }
        let w = world::world();
        let c = w.census();
        let r = rtc_census {
            size: size as u32,
            stopped: c.stopped as u32,
            threads_running: c.running as u32,
            threads_runnable: c.runnable as u32,
            threads_blocking: c.blocking as u32,
            threads_waiting: c.waiting as u32,
            procs: c.procs as u32,
            procs_idle: c.p_idle as u32,
            procs_running: c.p_running as u32,
            procs_syscall: c.p_syscall as u32,
            procs_stopped: c.p_stopped as u32,
            stops: w.stops.load(std::sync::atomic::Ordering::SeqCst),
        };
        // SAFETY: non-NULL, caller's struct of the right size.
        unsafe { out.write(r) };
        Ok(())
    })
}

/// Told of a preemption request: the request's number (1, 2, ... per
/// thread) and the `user_data` given to `rtc_set_preempt_handler`.
pub type rtc_preempt_fn =
    Option<unsafe extern "C" fn(request: u64, user_data: *mut std::ffi::c_void)>;

/// Set (or clear, with NULL) the function called when a thread honours one
/// of sysmon's preemption requests. sysmon asks a thread that has run 10 ms
/// without a safepoint to reach one; at its next safepoint (`rtc_safepoint`,
/// `rtc_enter_blocking`) the thread acknowledges the request and then calls
/// this function, on itself, as the last step of that call (inside a
/// blocking region already, for `rtc_enter_blocking`). Use it to log or
/// count long stretches without safepoints. It may call rtcore; it is not
/// called again for the same request.
///
/// Returns `RTC_OK`; `RTC_ERR_SHUT_DOWN`.
#[unsafe(no_mangle)]
pub extern "C" fn rtc_set_preempt_handler(
    handler: rtc_preempt_fn,
    user_data: *mut std::ffi::c_void,
) -> rtc_status {
    boundary("rtc_set_preempt_handler", || {
        lifecycle::enter()?;
        world::set_preempt_handler(handler, user_data);
        Ok(())
    })
}

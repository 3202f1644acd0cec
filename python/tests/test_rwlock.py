"""rtcore.RWLock: shared and exclusive holds under threads, try variants,
misuse statuses, keys, call sites and order reports through rwlocks.

Every test uses rank and lock names of its own (support.unique): ranks can
never be redefined in one process, and report mode prints a report once per
(held, wanted) rank pair. The lock-rank mode is set to report for the module
and left at report."""

import ctypes
import sys
import threading
import time
import unittest

import rtcore
from rtcore import RtcoreError

from . import support

HERE = sys._getframe().f_code.co_filename

# The word's reader-bias bit (src/lock/rwword.rs): once readers have met on
# a lock it may stay set in a free lock.
RBIAS = 8


def declare(tag, nestable=False):
    """Declare `NONE < A; A < B;` with fresh names; return (src, A, B)."""
    src = support.unique(f"{tag}_src") + ".ranks"
    a, b = support.unique(f"rw{tag}A"), support.unique(f"rw{tag}B")
    extra = f"nestable: {a}, {b};\n" if nestable else ""
    rtcore.load_ranks(f"# {tag}\nNONE < {a};\n{a} < {b};\n{extra}", src)
    return src, a, b


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Holder:
    """A thread that takes `lock` with `how` ("read", "write" or a
    callable), reports it has, and releases it when told."""

    def __init__(self, take):
        self.take = take
        self.taken = threading.Event()
        self.release = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._body, daemon=True)

    def _body(self):
        try:
            self.take()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
            self.taken.set()
            return
        self.taken.set()
        self.release.wait(60)
        self.unlock()

    def start(self, unlock):
        self.unlock = unlock
        self.thread.start()
        assert self.taken.wait(30), "holder did not take the lock"
        assert self.error is None, self.error
        return self

    def stop(self):
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "holder did not finish"


def hold(lock, mode):
    take = lock.read_lock if mode == "read" else lock.write_lock
    return Holder(take).start(lock.unlock)


class RWLockBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rtcore.set_lockrank_mode("report")

    def test_context_managers(self):
        rw = rtcore.RWLock(support.unique("ctx"))
        with rw.read() as entered:
            self.assertIs(entered, rw)
            self.assertNotEqual(rw._struct.state, 0)
        self.assertEqual(rw._struct.state, 0)
        with rw.write() as entered:
            self.assertIs(entered, rw)
            self.assertNotEqual(rw._struct.state, 0)
        self.assertEqual(rw._struct.state, 0)
        self.assertEqual(rw._struct.acquisitions, 2)

    def test_context_managers_unlock_on_exception(self):
        rw = rtcore.RWLock(support.unique("exc"))
        for cm in (rw.read, rw.write):
            with self.assertRaises(KeyError):
                with cm():
                    raise KeyError("boom")
            self.assertTrue(rw.try_write_lock())
            rw.unlock()

    def test_methods(self):
        rw = rtcore.RWLock()
        rw.read_lock()
        rw.unlock()
        rw.write_lock()
        rw.unlock()
        self.assertTrue(rw.try_read_lock())
        rw.unlock()
        self.assertTrue(rw.try_write_lock())
        rw.unlock()
        self.assertEqual(rw._struct.acquisitions, 4)
        self.assertEqual(rw._struct.state, 0)
        rw.destroy()

    def test_name_rank_and_repr(self):
        _, a, _ = declare("repr")
        name = support.unique("reprname")
        rw = rtcore.RWLock(name, a)
        self.assertEqual(rw._struct.name, name.encode())
        self.assertEqual(rw._struct.rank, rtcore.rank_lookup(a))
        r = repr(rw)
        self.assertTrue(r.startswith("<rtcore.RWLock "), r)
        self.assertIn(repr(name), r)
        self.assertIn(repr(a), r)
        self.assertIn(hex(ctypes.addressof(rw._struct)), r)

    def test_unknown_rank(self):
        rank = support.unique("norank")
        with self.assertRaises(RtcoreError) as cm:
            rtcore.RWLock("x", rank)
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_UNKNOWN_RANK)
        self.assertIn(rank, cm.exception.message)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            rtcore.RWLock("nul\0inside")
        with self.assertRaises(TypeError):
            rtcore.RWLock(42)
        rw = rtcore.RWLock()
        before = rtcore.last_error()
        for bad in (-1, 2**64):
            with self.assertRaises(OverflowError):
                rw.read_lock(key=bad)
            with self.assertRaises(OverflowError):
                rw.write(key=bad)
        with self.assertRaises(TypeError):
            rw.read(key="1")
        with self.assertRaises(TypeError):
            rw.write_lock(key=1.5)
        self.assertEqual(rtcore.last_error(), before, "a bad key reached the library")
        self.assertEqual(rw._struct.state & ~RBIAS, 0)


class RWLockThreads(unittest.TestCase):
    def test_readers_share(self):
        rw = rtcore.RWLock(support.unique("share"))
        n = 4
        # Every reader waits inside its read hold for all the others: this
        # only finishes if all n hold the lock at once.
        barrier = threading.Barrier(n, timeout=30)
        errors = []

        def reader():
            try:
                with rw.read():
                    barrier.wait()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=reader, daemon=True) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
            self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        # Reads once readers have met may be biased, which are not counted
        # (they do not write the lock); the first is always counted.
        self.assertGreaterEqual(rw._struct.acquisitions, 1)
        self.assertLessEqual(rw._struct.acquisitions, n)

    def test_writer_excludes(self):
        rw = rtcore.RWLock(support.unique("excl"))
        box = {"a": 0, "b": 0, "readers": 0, "writers": 0, "bad": []}
        count = threading.Lock()  # guards the "readers" tally only
        writers_n, readers_n, rounds = 3, 3, 300

        def writer():
            for _ in range(rounds):
                with rw.write():
                    box["writers"] += 1
                    if box["writers"] != 1 or box["readers"] != 0:
                        box["bad"].append(("writer", box["writers"], box["readers"]))
                    a = box["a"]
                    time.sleep(0)  # invite a switch inside the critical section
                    box["a"] = a + 1
                    time.sleep(0)
                    box["b"] += 1
                    box["writers"] -= 1

        def reader():
            for _ in range(rounds):
                with rw.read():
                    with count:
                        box["readers"] += 1
                    a = box["a"]
                    time.sleep(0)
                    if box["writers"] != 0 or box["a"] != box["b"] or box["a"] != a:
                        box["bad"].append(("reader", box["writers"], box["a"], box["b"], a))
                    with count:
                        box["readers"] -= 1

        ts = [threading.Thread(target=writer, daemon=True) for _ in range(writers_n)]
        ts += [threading.Thread(target=reader, daemon=True) for _ in range(readers_n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
            self.assertFalse(t.is_alive())
        self.assertEqual(box["bad"], [])
        self.assertEqual(box["a"], writers_n * rounds)
        self.assertEqual(box["b"], writers_n * rounds)
        # Every write counts; biased reads do not.
        self.assertGreaterEqual(rw._struct.acquisitions, writers_n * rounds)
        self.assertLessEqual(rw._struct.acquisitions, (writers_n + readers_n) * rounds)
        self.assertEqual(rw._struct.state & ~RBIAS, 0)

    def test_write_blocks_until_readers_leave(self):
        rw = rtcore.RWLock(support.unique("wblock"))
        h = hold(rw, "read")
        acquired = threading.Event()

        def waiter():
            with rw.write():
                acquired.set()

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        # The writer blocks in rtc_rwlock_wrlock_at with the GIL released.
        self.assertFalse(acquired.wait(0.3))
        h.stop()
        self.assertTrue(acquired.wait(30))
        t.join(30)
        self.assertFalse(t.is_alive())

    def test_read_blocks_while_written(self):
        rw = rtcore.RWLock(support.unique("rblock"))
        h = hold(rw, "write")
        acquired = threading.Event()

        def waiter():
            with rw.read():
                acquired.set()

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        self.assertFalse(acquired.wait(0.3))
        h.stop()
        self.assertTrue(acquired.wait(30))
        t.join(30)
        self.assertFalse(t.is_alive())

    def test_waiting_writer_stops_new_readers(self):
        rw = rtcore.RWLock(support.unique("prefer"))
        h = hold(rw, "read")
        writer_in = threading.Event()

        def writer():
            with rw.write():
                writer_in.set()

        t = threading.Thread(target=writer, daemon=True)
        t.start()

        def try_read():
            got = rw.try_read_lock()
            if got:
                rw.unlock()
            return got

        # Once the writer waits, a new reader is refused (writer-preferring).
        def refused():
            finished, result, error = support.run_in_thread(try_read)
            assert finished and error is None, error
            return result is False

        self.assertTrue(wait_until(refused), "a waiting writer did not stop new readers")
        self.assertFalse(writer_in.is_set())
        h.stop()
        self.assertTrue(writer_in.wait(30))
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertTrue(try_read())


class RWLockTry(unittest.TestCase):
    def in_thread(self, fn):
        finished, result, error = support.run_in_thread(fn)
        self.assertTrue(finished)
        self.assertIsNone(error)
        return result

    def try_and_release(self, rw, write):
        def body():
            got = rw.try_write_lock() if write else rw.try_read_lock()
            if got:
                rw.unlock()
            return got

        return self.in_thread(body)

    def test_try_against_a_reader(self):
        rw = rtcore.RWLock(support.unique("tryr"))
        h = hold(rw, "read")
        try:
            self.assertIs(self.try_and_release(rw, write=False), True)
            self.assertIs(self.try_and_release(rw, write=True), False)
        finally:
            h.stop()
        self.assertIs(self.try_and_release(rw, write=True), True)

    def test_try_against_a_writer(self):
        rw = rtcore.RWLock(support.unique("tryw"))
        h = hold(rw, "write")
        try:
            self.assertIs(self.try_and_release(rw, write=False), False)
            self.assertIs(self.try_and_release(rw, write=True), False)
            # BUSY is an expected outcome: no exception, no last-error message.
            def quiet():
                rtcore.clear_last_error()
                r = (rw.try_read_lock(), rw.try_write_lock())
                return r, rtcore.last_error()

            self.assertEqual(self.in_thread(quiet), ((False, False), (rtcore.RTC_OK, "")))
        finally:
            h.stop()
        self.assertIs(self.try_and_release(rw, write=False), True)

    def test_try_held_by_me_would_deadlock(self):
        rw = rtcore.RWLock(support.unique("trymine"))
        for take in (rw.read_lock, rw.write_lock):
            take()
            try:
                for attempt in (rw.try_read_lock, rw.try_write_lock):
                    with self.subTest(take=take.__name__, attempt=attempt.__name__):
                        with self.assertRaises(RtcoreError) as cm:
                            attempt()
                        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_WOULD_DEADLOCK)
            finally:
                rw.unlock()
        self.assertEqual(rw._struct.state & ~RBIAS, 0)


class RWLockMisuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rtcore.set_lockrank_mode("report")

    def relock(self, first, second):
        """Take `rw` with `first`, then `second` on the same thread: the
        second is refused at once. Returns the error."""
        name = support.unique("relock")
        rw = rtcore.RWLock(name)

        def body():
            getattr(rw, first)()
            start = time.monotonic()
            try:
                getattr(rw, second)()
            except RtcoreError as e:
                return e, time.monotonic() - start
            else:
                rw.unlock()
                return None, 0.0
            finally:
                rw.unlock()

        with support.CaptureStderr():
            finished, result, error = support.run_in_thread(body, timeout=30)
        self.assertTrue(finished, f"{second} after {first} hung")
        self.assertIsNone(error)
        e, elapsed = result
        self.assertIsInstance(e, RtcoreError, f"{second} after {first} was allowed")
        self.assertLess(elapsed, 5.0)
        self.assertEqual(rw._struct.state & ~RBIAS, 0, "the lock must end up free")
        self.assertIn(f"'{name}'", e.message)
        return e

    def test_read_after_read_would_deadlock(self):
        e = self.relock("read_lock", "read_lock")
        self.assertEqual(e.status, rtcore.RTC_ERR_WOULD_DEADLOCK)
        self.assertEqual(e.function, "rtc_rwlock_rdlock_at")
        self.assertIn("already holds it for reading", e.message)

    def test_write_after_read_would_deadlock(self):
        e = self.relock("read_lock", "write_lock")
        self.assertEqual(e.status, rtcore.RTC_ERR_WOULD_DEADLOCK)
        self.assertEqual(e.function, "rtc_rwlock_wrlock_at")

    def test_read_after_write_would_deadlock(self):
        e = self.relock("write_lock", "read_lock")
        self.assertEqual(e.status, rtcore.RTC_ERR_WOULD_DEADLOCK)

    def test_write_after_write_would_deadlock(self):
        e = self.relock("write_lock", "write_lock")
        self.assertEqual(e.status, rtcore.RTC_ERR_WOULD_DEADLOCK)

    def test_keyed_relock_would_deadlock(self):
        rw = rtcore.RWLock(support.unique("keyedrelock"))
        with rw.read(key=1):
            with support.CaptureStderr():
                with self.assertRaises(RtcoreError) as cm:
                    rw.read_lock(key=2)
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_WOULD_DEADLOCK)
        self.assertEqual(cm.exception.function, "rtc_rwlock_rdlock_keyed_at")

    def test_unlock_not_held(self):
        name = support.unique("notheld")
        rw = rtcore.RWLock(name)
        with self.assertRaises(RtcoreError) as cm:
            rw.unlock()
        e = cm.exception
        self.assertEqual(e.status, rtcore.RTC_ERR_NOT_OWNER)
        self.assertEqual(e.function, "rtc_rwlock_unlock")
        self.assertIn(f"'{name}'", e.message)
        self.assertEqual(rtcore.last_error(), (rtcore.RTC_ERR_NOT_OWNER, e.message))

    def test_unlock_held_by_other_thread(self):
        for mode in ("read", "write"):
            with self.subTest(mode=mode):
                rw = rtcore.RWLock(support.unique("otherholds"))
                h = hold(rw, mode)
                try:
                    with self.assertRaises(RtcoreError) as cm:
                        rw.unlock()
                    self.assertEqual(cm.exception.status, rtcore.RTC_ERR_NOT_OWNER)
                finally:
                    h.stop()
                self.assertEqual(rw._struct.state & ~RBIAS, 0)

    def test_unlock_twice(self):
        rw = rtcore.RWLock(support.unique("twice"))
        with rw.read():
            pass
        with self.assertRaises(RtcoreError) as cm:
            rw.unlock()
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_NOT_OWNER)

    def test_destroy_while_held(self):
        name = support.unique("destroyheld")
        rw = rtcore.RWLock(name)
        for how in ("read", "write"):
            with self.subTest(held_by="me", mode=how):
                with getattr(rw, how)():
                    with self.assertRaises(RtcoreError) as cm:
                        rw.destroy()
                    self.assertEqual(cm.exception.status, rtcore.RTC_ERR_LOCKED)
                    self.assertEqual(cm.exception.function, "rtc_rwlock_destroy")
            with self.subTest(held_by="other", mode=how):
                h = hold(rw, how)
                try:
                    with self.assertRaises(RtcoreError) as cm:
                        rw.destroy()
                    self.assertEqual(cm.exception.status, rtcore.RTC_ERR_LOCKED)
                finally:
                    h.stop()
        # Nothing changed: the lock still works, then destroys.
        with rw.write():
            pass
        rw.destroy()

    def test_use_after_destroy(self):
        rw = rtcore.RWLock(support.unique("destroyed"))
        rw.destroy()
        for call in (rw.read_lock, rw.write_lock, rw.try_read_lock, rw.try_write_lock, rw.unlock):
            with self.subTest(call=call.__name__):
                with self.assertRaises(RtcoreError) as cm:
                    call()
                self.assertEqual(cm.exception.status, rtcore.RTC_ERR_DESTROYED)

    def test_at_most_64_held(self):
        locks = [rtcore.RWLock(support.unique("many")) for _ in range(65)]
        # Try-locks: recorded as held, never order-checked (all are leaves).
        for i, rw in enumerate(locks[:64]):
            self.assertTrue(rw.try_read_lock() if i % 2 else rw.try_write_lock())
        try:
            for call in (locks[64].read_lock, locks[64].write_lock, locks[64].try_read_lock):
                with self.subTest(call=call.__name__):
                    with support.CaptureStderr():
                        with self.assertRaises(RtcoreError) as cm:
                            call()
                    self.assertEqual(cm.exception.status, rtcore.RTC_ERR_WRONG_STATE)
            self.assertEqual(locks[64]._struct.state & ~RBIAS, 0)
        finally:
            for rw in locks[:64]:
                rw.unlock()
        with locks[64].write():
            pass

    def test_after_shutdown(self):
        proc = support.run_python(
            """
            import rtcore
            def attempt(label, fn):
                try:
                    fn()
                except rtcore.RtcoreError as e:
                    print(label, e.status_name, flush=True)
                else:
                    print(label, "OK", flush=True)
            r, w, new = rtcore.RWLock("r"), rtcore.RWLock("w"), rtcore.RWLock("new")
            r.read_lock()
            w.write_lock()
            rtcore.shutdown()
            attempt("rdlock", new.read_lock)
            attempt("wrlock", new.write_lock)
            attempt("init", rtcore.RWLock)
            attempt("destroy-held", w.destroy)
            attempt("unlock-r", r.unlock)
            attempt("unlock-w", w.unlock)
            attempt("destroy-r", r.destroy)
            attempt("destroy-w", w.destroy)
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertEqual(
            proc.stdout.splitlines(),
            [
                "rdlock RTC_ERR_SHUT_DOWN",
                "wrlock RTC_ERR_SHUT_DOWN",
                "init RTC_ERR_SHUT_DOWN",
                "destroy-held RTC_ERR_LOCKED",
                "unlock-r OK",
                "unlock-w OK",
                "destroy-r OK",
                "destroy-w OK",
            ],
        )

    def test_misuse_keeps_lock_usable(self):
        rw = rtcore.RWLock(support.unique("usable"))
        with rw.read():
            with support.CaptureStderr():
                with self.assertRaises(RtcoreError):
                    rw.write_lock()
        h = hold(rw, "write")
        h.stop()
        self.assertEqual(rw._struct.state & ~RBIAS, 0)


class RWLockOrder(unittest.TestCase):
    """Order checking through rwlocks, in report mode."""

    @classmethod
    def setUpClass(cls):
        rtcore.set_lockrank_mode("report")

    def test_declared_order_is_silent(self):
        _, a, b = declare("ok")
        ra, rb = rtcore.RWLock("okA", a), rtcore.RWLock("okB", b)
        m = rtcore.Mutex("okM", b)
        before = rtcore.violations()
        with ra.read():
            with rb.write():
                pass
        with ra.write():
            with m:
                pass
        self.assertEqual(rtcore.violations(), before)

    def test_violation_through_a_read_lock(self):
        src, a, b = declare("rdheld")
        name_rw, name_m = support.unique("rwB"), support.unique("mA")
        rw, m = rtcore.RWLock(name_rw, b), rtcore.Mutex(name_m, a)
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            line_rw = sys._getframe().f_lineno + 1
            with rw.read():
                line_m = sys._getframe().f_lineno + 1
                with m:
                    pass
        self.assertEqual(rtcore.violations(), before + 1)
        report = rtcore.last_report()
        self.assertEqual(err.text, report)
        self.assertIn("lock order violation", report)
        self.assertIn(f"wants mutex '{name_m}' (rank {a}) at {HERE}:{line_m}", report)
        self.assertIn(
            f"while holding rwlock '{name_rw}' (rank {b}) read-locked at {HERE}:{line_rw}", report
        )
        self.assertIn(f"{src}:3: {a} < {b}", report)

    def test_violation_through_a_write_lock(self):
        _, a, b = declare("wrheld")
        name_rw = support.unique("rwB")
        rw, m = rtcore.RWLock(name_rw, b), rtcore.Mutex(support.unique("mA"), a)
        with support.CaptureStderr() as err:
            line_rw = sys._getframe().f_lineno + 1
            rw.write_lock()
            m.lock()
            m.unlock()
            rw.unlock()
        self.assertIn(
            f"while holding rwlock '{name_rw}' (rank {b}) write-locked at {HERE}:{line_rw}", err.text
        )

    def test_wanted_read_lock(self):
        src, a, b = declare("rdwant")
        name_rw = support.unique("rwA")
        rw, m = rtcore.RWLock(name_rw, a), rtcore.Mutex(support.unique("mB"), b)
        with support.CaptureStderr() as err:
            with m:
                line = sys._getframe().f_lineno + 1
                with rw.read():
                    pass
        self.assertIn(f"wants rwlock '{name_rw}' (rank {a}) for reading at {HERE}:{line}", err.text)
        self.assertIn(f"{src}:3: {a} < {b}", err.text)

    def test_try_read_lock_is_not_order_checked_but_recorded(self):
        _, a, b = declare("tryrd")
        name_rw = support.unique("rwB")
        rw, m = rtcore.RWLock(name_rw, b), rtcore.Mutex(support.unique("mA"), a)
        ma = rtcore.Mutex(support.unique("mA2"), a)
        before = rtcore.violations()
        with m:
            # Held a, try b then: fine; no check for a try-lock anyway.
            self.assertTrue(rw.try_read_lock())
            rw.unlock()
        self.assertEqual(rtcore.violations(), before)
        # A try-locked rwlock still counts as held for later checks.
        with support.CaptureStderr() as err:
            line = sys._getframe().f_lineno + 1
            self.assertTrue(rw.try_write_lock())
            with ma:
                pass
            rw.unlock()
        self.assertEqual(rtcore.violations(), before + 1)
        self.assertIn(f"while holding rwlock '{name_rw}' (rank {b}) try-locked at {HERE}:{line}", err.text)

    def test_keyed_nesting(self):
        _, a, _ = declare("keyed", nestable=True)
        r1, r2 = rtcore.RWLock(support.unique("row1"), a), rtcore.RWLock(support.unique("row2"), a)
        before = rtcore.violations()
        with r1.read(key=1):
            with r2.write(key=2):
                pass
        r1.write_lock(key=10)
        r2.read_lock(key=11)
        r2.unlock()
        r1.unlock()
        self.assertEqual(rtcore.violations(), before)
        with support.CaptureStderr() as err:
            with r2.read(key=2):
                line = sys._getframe().f_lineno + 1
                with r1.read(key=1):
                    pass
        self.assertEqual(rtcore.violations(), before + 1)
        self.assertIn("lock key order violation", err.text)
        self.assertIn(f"(rank {a}, key 0x1) for reading at {HERE}:{line}", err.text)
        self.assertIn(f"(rank {a}, key 0x2) read-locked at", err.text)


if __name__ == "__main__":
    unittest.main()

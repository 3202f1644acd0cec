"""The C contract through the raw declarations (rtcore._lib): things the
Mutex/Cond classes never do but a C caller may."""

import ctypes
import threading
import unittest

import rtcore
from rtcore import RtcoreError

from . import support

lib = rtcore._lib


def status_of(call, *args):
    """The status of a raw call (errcheck exceptions turned back into it)."""
    try:
        return call(*args)
    except RtcoreError as e:
        return e.status


class RawContract(unittest.TestCase):
    def test_all_zero_mutex_is_valid(self):
        m = rtcore.RtcMutex()
        self.assertEqual(lib.rtc_mutex_lock(ctypes.byref(m)), rtcore.RTC_OK)
        self.assertEqual(status_of(lib.rtc_mutex_trylock, ctypes.byref(m)), rtcore.RTC_ERR_WOULD_DEADLOCK)
        self.assertEqual(lib.rtc_mutex_unlock(ctypes.byref(m)), rtcore.RTC_OK)
        self.assertEqual(lib.rtc_mutex_trylock(ctypes.byref(m)), rtcore.RTC_OK)
        self.assertEqual(lib.rtc_mutex_unlock(ctypes.byref(m)), rtcore.RTC_OK)
        self.assertEqual(lib.rtc_mutex_destroy(ctypes.byref(m)), rtcore.RTC_OK)
        # Destroying an all-zero, never used mutex is allowed too.
        self.assertEqual(lib.rtc_mutex_destroy(ctypes.byref(rtcore.RtcMutex())), rtcore.RTC_OK)

    def test_trylock_busy_returns_status(self):
        m = rtcore.RtcMutex()
        lib.rtc_mutex_lock(ctypes.byref(m))
        try:
            finished, result, error = support.run_in_thread(
                lambda: lib.rtc_mutex_trylock(ctypes.byref(m))
            )
            self.assertTrue(finished)
            self.assertIsNone(error)
            self.assertEqual(result, rtcore.RTC_ERR_BUSY)
        finally:
            lib.rtc_mutex_unlock(ctypes.byref(m))

    def test_static_initialiser_with_undeclared_rank(self):
        rank = support.unique("staticnorank").encode()
        name = support.unique("static").encode()
        m = rtcore.RtcMutex()
        m.name, m.rank_name = name, rank  # RTC_MUTEX_INIT_RANKED(name, rank)
        with self.assertRaises(RtcoreError) as cm:
            lib.rtc_mutex_lock(ctypes.byref(m))
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_UNKNOWN_RANK)
        self.assertIn(rank.decode(), cm.exception.message)
        self.assertEqual(m.state, 0, "the mutex must not be locked")
        # Declared later, the same static mutex resolves on its next lock.
        rtcore.load_ranks(f"NONE < {rank.decode()};")
        self.assertEqual(lib.rtc_mutex_lock(ctypes.byref(m)), rtcore.RTC_OK)
        self.assertEqual(m.rank, rtcore.rank_lookup(rank.decode()))
        lib.rtc_mutex_unlock(ctypes.byref(m))

    def test_moved_mutex_is_refused(self):
        m = rtcore.Mutex(support.unique("moved"))
        with m:
            pass
        copy = rtcore.RtcMutex()
        ctypes.memmove(ctypes.byref(copy), ctypes.byref(m._struct), ctypes.sizeof(copy))
        with self.assertRaises(RtcoreError) as cm:
            lib.rtc_mutex_lock(ctypes.byref(copy))
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_MOVED)
        self.assertIn(m.name, cm.exception.message)
        with self.assertRaises(RtcoreError) as cm:
            lib.rtc_mutex_destroy(ctypes.byref(copy))
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_MOVED)
        with m:  # the original is fine
            pass

    def test_init_of_held_mutex_is_refused(self):
        m = rtcore.Mutex(support.unique("reinit"))
        m.lock()
        with self.assertRaises(RtcoreError) as cm:
            lib.rtc_mutex_init(ctypes.byref(m._struct), b"other", None)
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_LOCKED)
        m.unlock()
        # Re-initialising a destroyed mutex makes it usable again.
        m.destroy()
        self.assertEqual(lib.rtc_mutex_init(ctypes.byref(m._struct), b"again", None), rtcore.RTC_OK)
        with m:
            self.assertEqual(m._struct.name, b"again")

    def test_failed_init_leaves_mutex_untouched(self):
        m = rtcore.Mutex(support.unique("untouched"))
        before = bytes(m._struct)
        with self.assertRaises(RtcoreError) as cm:
            lib.rtc_mutex_init(ctypes.byref(m._struct), b"x", support.unique("nope").encode())
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_UNKNOWN_RANK)
        self.assertEqual(bytes(m._struct), before)

    def test_out_parameter_untouched_on_failure(self):
        out = ctypes.c_uint32(0xDEADBEEF)
        with self.assertRaises(RtcoreError):
            lib.rtc_rank_lookup(support.unique("absent").encode(), ctypes.byref(out))
        self.assertEqual(out.value, 0xDEADBEEF)

    def test_last_error_message_buffer_contract(self):
        with self.assertRaises(RtcoreError) as cm:
            rtcore.rank_lookup(support.unique("msg"))
        text = cm.exception.message.encode()
        self.assertGreater(len(text), 10)
        self.assertEqual(lib.rtc_last_error_message(None, 0), len(text) + 1)
        small = ctypes.create_string_buffer(8)
        ctypes.memset(small, 0xFF, 8)
        self.assertEqual(lib.rtc_last_error_message(small, 5), len(text) + 1)
        self.assertEqual(small.raw[:5], text[:4] + b"\0")
        self.assertEqual(small.raw[5:], b"\xff" * 3, "wrote past len")
        self.assertEqual(lib.rtc_last_error_status(), rtcore.RTC_ERR_UNKNOWN_RANK)

    def test_last_error_survives_success_and_is_per_thread(self):
        with self.assertRaises(RtcoreError) as cm:
            rtcore.rank_lookup(support.unique("sticky"))
        rtcore.version()
        with rtcore.Mutex():
            pass
        self.assertEqual(rtcore.last_error(), (rtcore.RTC_ERR_UNKNOWN_RANK, cm.exception.message))
        finished, result, _ = support.run_in_thread(rtcore.last_error)
        self.assertTrue(finished)
        self.assertEqual(result, (rtcore.RTC_OK, ""))
        rtcore.clear_last_error()
        self.assertEqual(rtcore.last_error(), (rtcore.RTC_OK, ""))
        self.assertEqual(lib.rtc_last_error_message(None, 0), 1)

    def test_last_report_buffer_contract(self):
        src = support.unique("rep") + ".ranks"
        a, b = support.unique("repA"), support.unique("repB")
        rtcore.load_ranks(f"NONE < {a};\n{a} < {b};\n", src)
        ma, mb = rtcore.Mutex("rA", a), rtcore.Mutex("rB", b)
        rtcore.set_lockrank_mode("report")
        with support.CaptureStderr():
            with mb:
                with ma:
                    pass
        report = rtcore.last_report().encode()
        self.assertIn(f"{src}:2: {a} < {b}".encode(), report)
        needed = ctypes.c_size_t(0)
        self.assertEqual(lib.rtc_lockrank_last_report(None, 0, ctypes.byref(needed)), rtcore.RTC_OK)
        self.assertEqual(needed.value, len(report) + 1)
        buf = ctypes.create_string_buffer(12)
        ctypes.memset(buf, 0xFF, 12)
        self.assertEqual(lib.rtc_lockrank_last_report(buf, 10, None), rtcore.RTC_OK)
        self.assertEqual(buf.raw[:10], report[:9] + b"\0")
        self.assertEqual(buf.raw[10:], b"\xff\xff")

    def test_cond_wait_on_mutex_held_by_other_thread(self):
        m, c = rtcore.Mutex(support.unique("cw")), rtcore.Cond()
        taken, release = threading.Event(), threading.Event()

        def holder():
            with m:
                taken.set()
                release.wait(30)

        t = threading.Thread(target=holder, daemon=True)
        t.start()
        self.assertTrue(taken.wait(30))
        try:
            with self.assertRaises(RtcoreError) as cm:
                c.wait(m, timeout=0.01)
            self.assertEqual(cm.exception.status, rtcore.RTC_ERR_NOT_OWNER)
        finally:
            release.set()
            t.join(30)

    def test_init_with_null_config(self):
        proc = support.run_python(
            """
            import rtcore
            print("init", rtcore._lib.rtc_init(None))
            print("mode", rtcore.lockrank_mode())
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertEqual(proc.stdout.split(), ["init", "0", "mode", "report"])

    def test_init_with_too_small_config(self):
        proc = support.run_python(
            """
            import ctypes, rtcore
            cfg = rtcore.RtcConfig(size=4)
            try:
                rtcore._lib.rtc_init(ctypes.byref(cfg))
            except rtcore.RtcoreError as e:
                print(e.status_name)
            cfg = rtcore.RtcConfig(size=8, lockrank_mode=rtcore.RTC_LOCKRANK_OFF)
            print("init", rtcore._lib.rtc_init(ctypes.byref(cfg)), rtcore.lockrank_mode())
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertEqual(proc.stdout.split(), ["RTC_ERR_INVALID_ARGUMENT", "init", "0", "off"])


if __name__ == "__main__":
    unittest.main()

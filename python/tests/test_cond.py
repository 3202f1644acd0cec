"""rtcore.Cond: waiting and notifying between Python threads."""

import threading
import time
import unittest

import rtcore
from rtcore import RtcoreError

from . import support


class CondTests(unittest.TestCase):
    def test_producer_consumer(self):
        m, c = rtcore.Mutex(support.unique("pc")), rtcore.Cond()
        items, got = [], []
        n = 20

        def consumer():
            while len(got) < n:
                with m:
                    while not items:
                        self.assertIs(c.wait(m), True)
                    got.append(items.pop(0))

        t = threading.Thread(target=consumer, daemon=True)
        t.start()
        for i in range(n):
            with m:
                items.append(i)
                c.notify()
            if i % 5 == 0:
                time.sleep(0.01)
        t.join(60)
        self.assertFalse(t.is_alive(), "consumer did not finish")
        self.assertEqual(got, list(range(n)))

    def test_notify_all_wakes_every_waiter(self):
        m, c = rtcore.Mutex(support.unique("all")), rtcore.Cond()
        state = {"go": False, "waiting": 0, "woken": 0}
        waiting_cond = rtcore.Cond()

        def waiter():
            with m:
                state["waiting"] += 1
                waiting_cond.notify()
                while not state["go"]:
                    c.wait(m)
                state["woken"] += 1

        ts = [threading.Thread(target=waiter, daemon=True) for _ in range(4)]
        for t in ts:
            t.start()
        with m:
            deadline = time.monotonic() + 30
            while state["waiting"] < len(ts) and time.monotonic() < deadline:
                waiting_cond.wait(m, timeout=0.5)
            self.assertEqual(state["waiting"], len(ts))
            self.assertEqual(state["woken"], 0)
            state["go"] = True
            c.notify_all()
        for t in ts:
            t.join(30)
            self.assertFalse(t.is_alive())
        self.assertEqual(state["woken"], len(ts))

    def test_timed_wait_times_out_with_mutex_retaken(self):
        m, c = rtcore.Mutex(support.unique("timed")), rtcore.Cond()
        m.lock()
        start = time.monotonic()
        rtcore.clear_last_error()
        self.assertIs(c.wait(m, timeout=0.2), False)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.19)
        self.assertLess(elapsed, 20)
        # TIMED_OUT is an expected outcome: no last-error message stored.
        self.assertEqual(rtcore.last_error(), (rtcore.RTC_OK, ""))
        # The mutex is held again, by this thread.
        finished, result, _ = support.run_in_thread(m.try_lock)
        self.assertTrue(finished)
        self.assertIs(result, False)
        m.unlock()
        with self.assertRaises(RtcoreError) as cm:
            m.unlock()
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_NOT_OWNER)

    def test_zero_and_negative_timeouts(self):
        m, c = rtcore.Mutex(support.unique("zero")), rtcore.Cond()
        with m:
            self.assertIs(c.wait(m, timeout=0), False)
            self.assertIs(c.wait(m, timeout=-1.0), False)
        self.assertTrue(m.try_lock())
        m.unlock()

    def test_timeout_conversion(self):
        self.assertEqual(rtcore._timeout_ns(1.5), 1_500_000_000)
        self.assertEqual(rtcore._timeout_ns(2), 2_000_000_000)
        self.assertEqual(rtcore._timeout_ns(-3), 0)
        self.assertEqual(rtcore._timeout_ns(float("inf")), 2**64 - 1)
        self.assertEqual(rtcore._timeout_ns(1e30), 2**64 - 1)
        m, c = rtcore.Mutex(support.unique("nan")), rtcore.Cond()
        with m:
            with self.assertRaises(ValueError):
                c.wait(m, timeout=float("nan"))
        self.assertTrue(m.try_lock())
        m.unlock()

    def test_timed_wait_signalled(self):
        m, c = rtcore.Mutex(support.unique("signalled")), rtcore.Cond()
        state = {"ready": False, "waiting": False}
        out = {}

        def waiter():
            with m:
                state["waiting"] = True
                start = time.monotonic()
                results = []
                while not state["ready"]:
                    results.append(c.wait(m, timeout=float("inf")))
                out["results"], out["elapsed"] = results, time.monotonic() - start

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        while True:
            with m:
                if state["waiting"]:
                    state["ready"] = True
                    c.notify()
                    break
            time.sleep(0.01)
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertTrue(out["results"])
        self.assertTrue(all(r is True for r in out["results"]), out["results"])
        self.assertLess(out["elapsed"], 20)

    def test_wait_without_holding_the_mutex(self):
        name = support.unique("nothold")
        m, c = rtcore.Mutex(name), rtcore.Cond()
        for timeout in (None, 0.01):
            with self.subTest(timeout=timeout):
                with self.assertRaises(RtcoreError) as cm:
                    c.wait(m, timeout=timeout)
                self.assertEqual(cm.exception.status, rtcore.RTC_ERR_NOT_OWNER)
                self.assertIn(name, cm.exception.message)

    def test_wait_needs_an_rtcore_mutex(self):
        with self.assertRaises(TypeError):
            rtcore.Cond().wait(threading.Lock())

    def test_destroy(self):
        m, c = rtcore.Mutex(support.unique("cdestroy")), rtcore.Cond()
        state = {"go": False, "waiting": False}

        def waiter():
            with m:
                state["waiting"] = True
                while not state["go"]:
                    c.wait(m)

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        while True:
            with m:
                if state["waiting"]:
                    # The waiter released `m` inside wait: it is waiting now.
                    with self.assertRaises(RtcoreError) as cm:
                        c.destroy()
                    self.assertEqual(cm.exception.status, rtcore.RTC_ERR_LOCKED)
                    state["go"] = True
                    c.notify_all()
                    break
            time.sleep(0.01)
        t.join(30)
        self.assertFalse(t.is_alive())
        c.destroy()
        for op in (c.notify, c.notify_all):
            with self.subTest(op=op.__name__):
                with self.assertRaises(RtcoreError) as cm:
                    op()
                self.assertEqual(cm.exception.status, rtcore.RTC_ERR_DESTROYED)
        with m:
            with self.assertRaises(RtcoreError) as cm:
                c.wait(m, timeout=0.01)
            self.assertEqual(cm.exception.status, rtcore.RTC_ERR_DESTROYED)

    def test_repr(self):
        self.assertTrue(repr(rtcore.Cond()).startswith("<rtcore.Cond at 0x"))


if __name__ == "__main__":
    unittest.main()

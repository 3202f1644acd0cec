"""The world from Python: attach, blocking regions, stop/start, maxprocs.
Each case runs in a fresh interpreter: the world is per process."""

import unittest

from tests.support import describe, run_python


class WorldTest(unittest.TestCase):
    def run_ok(self, code):
        p = run_python(code)
        self.assertEqual(p.returncode, 0, describe(p))
        return p

    def test_attach_states_and_blocking(self):
        self.run_ok(
            """
            import rtcore
            assert rtcore.thread_state() == "unattached"
            tid = rtcore.attach("py-main")
            assert tid == rtcore.thread_id() and tid > 0
            assert rtcore.thread_state() == "running"
            with rtcore.blocking("sleep"):
                assert rtcore.thread_state() == "blocking"
                assert rtcore.census()["procs_syscall"] == 1
            assert rtcore.thread_state() == "running"
            try:
                rtcore.attach("again")
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_WRONG_STATE", e
                assert "already attached" in e.message
            else:
                raise AssertionError("second attach accepted")
            rtcore.detach()
            assert rtcore.thread_state() == "unattached"
            """
        )

    def test_stop_freezes_python_workers(self):
        self.run_ok(
            """
            import threading, time, rtcore
            counters = [0, 0, 0]
            done = False
            def work(i):
                rtcore.attach(f"py-worker-{i}")
                while not done:
                    counters[i] += 1
                    if i == 2:
                        with rtcore.blocking("sleep"):
                            time.sleep(0.0005)
                    rtcore.safepoint()
                rtcore.detach()
            ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
            for t in ts: t.start()
            time.sleep(0.05)
            for _ in range(20):
                with rtcore.stopped_world("python test"):
                    rtcore.assert_world_stopped()
                    snap = list(counters)
                    time.sleep(0.002)
                    assert counters == snap, (counters, snap)
                    c = rtcore.census()
                    assert c["stopped"] == 1 and c["threads_running"] == 0, c
                before = list(counters)
                deadline = time.time() + 5
                while any(a == b for a, b in zip(counters, before)) and time.time() < deadline:
                    time.sleep(0.001)
                assert all(a != b for a, b in zip(counters, before)), "a worker made no progress"
            done = True
            for t in ts: t.join()
            """
        )

    def test_misuse_raises(self):
        self.run_ok(
            """
            import rtcore
            for fn, status in [(rtcore.start_the_world, "RTC_ERR_WRONG_STATE"),
                               (rtcore.detach, "RTC_ERR_WRONG_STATE"),
                               (rtcore.assert_world_stopped, "RTC_ERR_WRONG_STATE")]:
                try:
                    fn()
                except rtcore.RtcoreError as e:
                    assert e.status_name == status, e
                else:
                    raise AssertionError(f"{fn.__name__} accepted")
            try:
                rtcore.set_maxprocs(70000)
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_INVALID_ARGUMENT"
            else:
                raise AssertionError("maxprocs 70000 accepted")
            assert rtcore.set_maxprocs(2) == 0 and rtcore.get_maxprocs() == 2
            rtcore.stop_the_world("x")
            try:
                rtcore.stop_the_world("nested")
            except rtcore.RtcoreError as e:
                assert "do not nest" in e.message
            else:
                raise AssertionError("nested stop accepted")
            rtcore.start_the_world()
            """
        )

    def test_blocking_misuse_and_queries(self):
        self.run_ok(
            """
            import rtcore
            def expect(fn, status, text=None):
                try:
                    fn()
                except rtcore.RtcoreError as e:
                    assert e.status_name == status, e
                    assert text is None or text in e.message, e.message
                else:
                    raise AssertionError(f"{fn} accepted")
            expect(rtcore._lib.rtc_exit_blocking, "RTC_ERR_WRONG_STATE", "not attached")
            expect(lambda: rtcore.blocking("x").__enter__(), "RTC_ERR_WRONG_STATE", "not attached")
            rtcore.attach("q")
            expect(rtcore._lib.rtc_exit_blocking, "RTC_ERR_WRONG_STATE", "not inside a blocking region")
            with rtcore.blocking("outer"):
                expect(lambda: rtcore.blocking("inner").__enter__(), "RTC_ERR_WRONG_STATE", "do not nest")
                expect(rtcore.detach, "RTC_ERR_WRONG_STATE", "BLOCKING")
            a, b = rtcore.thread_id(), rtcore.thread_id()
            assert a == b and a > 0
            rtcore.set_safepoint_threshold_ns(10**8)
            c = rtcore.census()
            assert c["threads_running"] == 1 and c["procs"] >= 1 and c["stopped"] == 0, c
            rtcore.detach()
            assert rtcore.census()["threads_running"] == 0
            """
        )


if __name__ == "__main__":
    unittest.main()

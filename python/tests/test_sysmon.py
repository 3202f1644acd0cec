"""sysmon and hooks from Python: hooks as callables on the hook thread,
thresholds, reports, schedtrace, exit with hooks registered, and fork.
Each case runs in a fresh interpreter (one world, one sysmon per process).
Time bounds are one-sided and wide (a loaded 2-core machine)."""

import unittest

from tests.support import describe, run_python


class SysmonTest(unittest.TestCase):
    def run_ok(self, code, env=None):
        p = run_python(code, env=env)
        self.assertEqual(p.returncode, 0, describe(p))
        return p

    def test_hook_runs_a_callable_on_the_hook_thread(self):
        self.run_ok(
            """
            import threading, time, rtcore
            seen = []
            def sample():
                seen.append(threading.get_ident())  # Python objects: the GIL is held
            with rtcore.add_hook("sampler", 0.002, sample) as h:
                assert h.active and h.id > 0
                deadline = time.monotonic() + 2
                while len(seen) < 5 and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert len(seen) >= 5, seen
                assert threading.get_ident() not in seen
                assert rtcore.sysmon_stats()["hooks"] == 1
            assert not h.active
            n = len(seen)
            time.sleep(0.02)
            assert len(seen) == n, "a removed hook ran again"
            assert rtcore.sysmon_stats()["hook_runs"] >= 5
            try:
                h.remove()
            except rtcore.RtcoreError as e:
                assert e.status_name == "RTC_ERR_INVALID_ARGUMENT", e
            else:
                raise AssertionError("second removal accepted")
            """
        )

    def test_self_removal_exceptions_and_refusals(self):
        self.run_ok(
            """
            import time, rtcore
            runs = []
            box = {}
            def once():
                runs.append(1)
                box["hook"].remove()           # effective when this returns
                try:
                    rtcore.stop_the_world("from a hook")
                except rtcore.RtcoreError as e:
                    box["stop"] = e.status_name
                try:
                    rtcore.attach("hook")
                except rtcore.RtcoreError as e:
                    box["attach"] = e.status_name
            box["hook"] = rtcore.add_hook("once", 0.005, once)
            deadline = time.monotonic() + 2
            while not runs and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.05)
            assert len(runs) == 1, runs
            assert box["stop"] == "RTC_ERR_WOULD_DEADLOCK", box
            assert box["attach"] == "RTC_ERR_WRONG_STATE", box
            assert not box["hook"].active
            # An exception in a hook is printed; the hook stays registered.
            calls = []
            def failing():
                calls.append(1)
                raise RuntimeError("boom in hook")
            h = rtcore.add_hook("failing", 0.002, failing)
            deadline = time.monotonic() + 2
            while len(calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(calls) >= 3 and h.active
            h.remove()
            """
        )

    def test_misuse_raises(self):
        self.run_ok(
            """
            import rtcore
            def expect(exc, fn, *args, status=None, text=None):
                try:
                    fn(*args)
                except exc as e:
                    if status:
                        assert e.status_name == status, e
                    if text:
                        assert text in str(e), e
                else:
                    raise AssertionError(f"{fn.__name__}{args} did not raise")
            expect(TypeError, rtcore.add_hook, "h", 0.01, "not callable")
            expect(ValueError, rtcore.add_hook, "h", 0, lambda: None)
            expect(rtcore.RtcoreError, rtcore.add_hook, "h", 0.00001, lambda: None,
                   status="RTC_ERR_INVALID_ARGUMENT", text="outside 100000 ns")
            expect(ValueError, rtcore.add_hook, "bad\\0name", 0.01, lambda: None)
            expect(ValueError, rtcore.set_sysmon_threshold, "lockstall", -1)
            expect(ValueError, rtcore.sysmon_threshold, "nonsense")
            expect(rtcore.RtcoreError, rtcore.set_sysmon_threshold, "lockstall", 2e9,
                   status="RTC_ERR_INVALID_ARGUMENT", text="above the limit")
            expect(ValueError, rtcore.set_sysmon_threshold, "lockstall", 1e12)
            expect(ValueError, rtcore.add_hook, "h", 1e12, lambda: None)
            expect(TypeError, rtcore.set_preempt_handler, 42)
            rtcore.set_preempt_handler(lambda n: None)
            rtcore.set_preempt_handler(None)
            h = rtcore.add_hook("ok", 0.01, lambda: None)
            h.remove()
            expect(rtcore.RtcoreError, h.remove, status="RTC_ERR_INVALID_ARGUMENT")
            assert rtcore.sysmon_last_report() == ""
            """
        )

    def test_a_deadlock_is_named_once(self):
        p = self.run_ok(
            """
            import threading, time, rtcore
            rtcore.set_lockrank_mode("off")
            a, b = rtcore.Mutex("ledger"), rtcore.Mutex("journal")
            both = threading.Barrier(2)
            def cross(first, second, name):
                threading.current_thread().name = name
                rtcore.attach(name)
                with first:
                    both.wait()
                    second.lock()  # never returns
            for args in ((a, b, "payer"), (b, a, "payee")):
                threading.Thread(target=cross, args=args, daemon=True).start()
            t0 = time.monotonic()
            while rtcore.sysmon_stats()["deadlocks"] == 0:
                assert time.monotonic() - t0 < 10, "no deadlock report"
                time.sleep(0.01)
            time.sleep(1.0)
            assert rtcore.sysmon_stats()["deadlocks"] == 1
            import os
            os._exit(0)  # the deadlocked threads never return
            """
        )
        # Every sysmon report goes to stderr (the last one may be a lock
        # stall report about the same two threads).
        lines = [l for l in p.stderr.splitlines() if "deadlock:" in l]
        self.assertEqual(len(lines), 1, describe(p))
        for part in ("'payer'", "'payee'", "mutex 'ledger'", "mutex 'journal'", " at <string>:11"):
            self.assertIn(part, lines[0])

    def test_exit_with_hooks_registered_is_clean(self):
        p = self.run_ok(
            """
            import time, rtcore
            ticks = []
            rtcore.add_hook("left", 0.001, lambda: ticks.append(1))
            rtcore.attach("main")
            time.sleep(0.05)
            assert ticks
            print("exiting")
            """
        )
        self.assertIn("exiting", p.stdout)

    def test_exit_while_holding_the_world_with_a_hook_running(self):
        # The at-exit removal meets WOULD_DEADLOCK, restarts the world and
        # retries; no callback runs into a finalized interpreter.
        p = self.run_ok(
            """
            import time, rtcore
            rtcore.attach("main")
            started = []
            def slow():
                started.append(1)
                time.sleep(0.3)
            rtcore.add_hook("slow", 0.01, slow)
            while not started:
                time.sleep(0.001)
            rtcore.stop_the_world("exit")
            print("exiting", flush=True)
            """
        )
        self.assertIn("exiting", p.stdout)

    def test_thresholds_and_reports(self):
        p = self.run_ok(
            """
            import time, rtcore
            assert rtcore.sysmon_threshold("threadstall") == 0
            assert rtcore.sysmon_threshold("lockstall") == 1.0
            old = rtcore.set_sysmon_threshold("threadstall", 0.05)
            assert old == 0 and rtcore.sysmon_threshold("threadstall") == 0.05
            try:
                rtcore.set_sysmon_threshold("nonsense", 1)
            except ValueError as e:
                assert "threadstall" in str(e)
            else:
                raise AssertionError("unknown setting accepted")
            rtcore.attach("py-sleeper")
            before = rtcore.sysmon_stats()
            with rtcore.blocking("time.sleep"):
                deadline = time.monotonic() + 2
                while (rtcore.sysmon_stats()["stall_reports"] == before["stall_reports"]
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                r = rtcore.sysmon_last_report()  # before the stall resolves
            assert "'py-sleeper'" in r and "BLOCKING for" in r and "'time.sleep'" in r, r
            deadline = time.monotonic() + 2
            while (rtcore.sysmon_stats()["stalls_resolved"] == before["stalls_resolved"]
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            assert "resolved after" in rtcore.sysmon_last_report()
            rtcore.detach()
            """
        )
        self.assertIn("rtcore: sysmon: thread", p.stderr)

    def test_rtcore_debug_sets_thresholds_and_schedtrace(self):
        p = self.run_ok(
            """
            import time, rtcore
            assert rtcore.sysmon_threshold("threadstall") == 0.05
            assert rtcore.sysmon_threshold("schedtrace") == 0.02
            rtcore.attach("traced")
            time.sleep(0.2)
            rtcore.detach()
            """,
            env={"RTCORE_DEBUG": "threadstall=50,schedtrace=20"},
        )
        lines = [l for l in p.stderr.splitlines() if l.startswith("rtcore: SCHED ")]
        self.assertGreaterEqual(len(lines), 2, p.stderr)
        self.assertIn("procs=", lines[0])
        self.assertIn("threads=", lines[0])
        self.assertIn("sysmon: delay=", lines[0])

    def test_fork_while_hooks_run_and_threads_block(self):
        self.run_ok(
            """
            import os, threading, time, rtcore
            ticks = []
            rtcore.add_hook("ticker", 0.001, lambda: ticks.append(os.getpid()))
            rtcore.attach("parent-main")
            stop = threading.Event()
            m = rtcore.Mutex("forkmu")
            def blocker():
                rtcore.attach("blocker")
                with m:
                    with rtcore.blocking("wait for event"):
                        stop.wait()
                rtcore.detach()
            def waiter():
                rtcore.attach("waiter")
                with m:                      # waits while the blocker holds it
                    pass
                rtcore.detach()
            ts = [threading.Thread(target=blocker), threading.Thread(target=waiter)]
            for t in ts:
                t.start()
            time.sleep(0.05)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    c = rtcore.census()
                    assert c["threads_running"] + c["threads_blocking"] + c["threads_waiting"] + c["threads_runnable"] == 1, c
                    with rtcore.stopped_world("child"):
                        rtcore.assert_world_stopped()
                    t = threading.Thread(target=lambda: (rtcore.attach("child-worker"), rtcore.safepoint(), rtcore.detach()))
                    t.start(); t.join()
                    mine = len([p for p in ticks if p == os.getpid()])
                    deadline = time.monotonic() + 2
                    while len([p for p in ticks if p == os.getpid()]) == mine and time.monotonic() < deadline:
                        time.sleep(0.001)
                    assert len([p for p in ticks if p == os.getpid()]) > mine, "no hook run in the child"
                    assert rtcore.sysmon_stats()["running"] == 1
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            stop.set()
            for t in ts:
                t.join()
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            rtcore.detach()
            """
        )


if __name__ == "__main__":
    unittest.main()

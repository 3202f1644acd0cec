"""Violation reports as objects: rtcore.on_violation (callback mode),
rtcore.next_violation (queue mode), violations_dropped, and keyed nesting
(Mutex.lock(key=), Mutex.keyed, RWLock keys) seen through those reports.

Process state: every test declares ranks of its own (support.unique; ranks
can never be redefined in one process, and report mode prints once per rank
pair). Each class sets the mode it needs in setUp and puts back report mode,
no callback and an empty queue in tearDown; the module does so again when
it ends."""

import ctypes
import sys
import textwrap
import threading
import unittest

import rtcore
from rtcore import LockInfo, LockReport, RtcoreError

from . import support

HERE = sys._getframe().f_code.co_filename


def declare(tag, text):
    """Load `text` with {0}, {1}, ... replaced by fresh rank names; return
    (source name, [names])."""
    names = [support.unique(f"rep{tag}{i}") for i in range(8)]
    src = support.unique(f"{tag}_src") + ".ranks"
    rtcore.load_ranks(f"# {tag}\n" + text.format(*names), src)
    return src, names


def drain():
    """Empty the report queue; return what it held."""
    out = []
    while True:
        r = rtcore.next_violation()
        if r is None:
            return out
        out.append(r)


def reset():
    rtcore.on_violation(None)
    rtcore.set_lockrank_mode("report")
    drain()


def tearDownModule():
    reset()


def addr(lock):
    return ctypes.addressof(lock._struct)


class CallbackMode(unittest.TestCase):
    def setUp(self):
        self.got = []
        self.assertIsNone(rtcore.on_violation(self.got.append))

    def tearDown(self):
        reset()

    def test_mode_selection(self):
        self.assertEqual(rtcore.lockrank_mode(), "callback")
        with self.assertRaises(ValueError):
            rtcore.set_lockrank_mode("callback")
        with self.assertRaises(ValueError):
            rtcore.init(lockrank_mode="callback")
        with self.assertRaises(TypeError):
            rtcore.on_violation(42)
        self.assertEqual(rtcore.lockrank_mode(), "callback")
        # Report mode with the callback kept; the int re-selects it.
        rtcore.set_lockrank_mode("report")
        self.assertEqual(rtcore.lockrank_mode(), "report")
        rtcore.set_lockrank_mode(rtcore.RTC_LOCKRANK_CALLBACK)
        self.assertEqual(rtcore.lockrank_mode(), "callback")
        # None clears it (and returns what was set) and selects report.
        self.assertEqual(rtcore.on_violation(None), self.got.append)
        self.assertEqual(rtcore.lockrank_mode(), "report")
        with self.assertRaises(RtcoreError) as cm:
            rtcore.set_lockrank_mode(rtcore.RTC_LOCKRANK_CALLBACK)
        self.assertEqual(cm.exception.status, rtcore.RTC_ERR_INVALID_ARGUMENT)
        self.assertEqual(rtcore.lockrank_mode(), "report")
        self.assertIsNone(rtcore.on_violation(None))

    def test_whole_held_stack(self):
        src, (a, b, c, d, *_) = declare("stack", "NONE < {0};\n{0} < {1};\n{1} < {2};\n{2} < {3};\n")
        ma = rtcore.Mutex(support.unique("stackA"), a)
        mb = rtcore.Mutex(support.unique("stackB"), b)
        rc = rtcore.RWLock(support.unique("stackC"), c)
        rd = rtcore.RWLock(support.unique("stackD"), d)
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            line_a = sys._getframe().f_lineno + 1
            with ma:
                line_c = sys._getframe().f_lineno + 1
                rc.read_lock()
                line_d = sys._getframe().f_lineno + 1
                self.assertTrue(rd.try_write_lock())
                line_b = sys._getframe().f_lineno + 1
                mb.lock()  # b after c and d: a violation
                self.assertEqual(len(self.got), 1, "the callback ran before the lock returned")
                mb.unlock()
                rd.unlock()
                rc.unlock()
        self.assertEqual(err.text, "", "callback mode prints nothing")
        self.assertEqual(rtcore.violations(), before + 1)
        self.assertEqual(len(self.got), 1)
        r = self.got[0]
        self.assertIsInstance(r, LockReport)
        self.assertEqual(r.reason, "order")
        self.assertEqual(r.thread_id, rtcore.thread_id())
        self.assertIsInstance(r.thread_name, str)
        self.assertGreaterEqual(r.sequence, 1)
        self.assertEqual(
            r.wanted,
            LockInfo(addr(mb), mb.name, b, "mutex", "exclusive", addr(mb), HERE, line_b, False, False),
        )
        self.assertEqual(
            r.held,
            [
                LockInfo(addr(ma), ma.name, a, "mutex", "exclusive", addr(ma), HERE, line_a, False, False),
                LockInfo(addr(rc), rc.name, c, "rwlock", "shared", addr(rc), HERE, line_c, False, True),
                LockInfo(addr(rd), rd.name, d, "rwlock", "exclusive", addr(rd), HERE, line_d, True, True),
            ],
        )
        self.assertEqual(r.conflicting, r.held[1:])
        self.assertIn("rtcore: lock order violation (lock-rank mode callback)", r.text)
        self.assertIn(f"wants mutex '{mb.name}' (rank {b}) at {HERE}:{line_b}", r.text)
        self.assertIn(f"while holding rwlock '{rc.name}' (rank {c}) read-locked at {HERE}:{line_c}", r.text)
        self.assertIn(f"while holding rwlock '{rd.name}' (rank {d}) try-locked at {HERE}:{line_d}", r.text)
        self.assertIn(f"also holding mutex '{ma.name}' (rank {a}) locked at {HERE}:{line_a}", r.text)
        self.assertIn(f"{src}:4: {b} < {c}", r.text)

    def test_unnamed_and_unranked_locks(self):
        _, (a, *_) = declare("anon", "NONE < {0};\n")
        leaf = rtcore.RWLock()
        ranked = rtcore.Mutex(None, a)
        with leaf.write():
            line = sys._getframe().f_lineno + 1
            with ranked:
                pass
        (r,) = self.got
        self.assertEqual(r.held[0].name, "(unnamed)")
        self.assertEqual(r.held[0].rank, "unranked")
        self.assertEqual(r.held[0].kind, "rwlock")
        self.assertTrue(r.held[0].conflicts)
        self.assertEqual(r.wanted.name, "(unnamed)")
        self.assertEqual((r.wanted.rank, r.wanted.file, r.wanted.line), (a, HERE, line))

    def test_every_violation_is_delivered(self):
        _, (a, b, *_) = declare("every", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("everyA", a), rtcore.Mutex("everyB", b)
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            for _ in range(3):
                with mb:
                    with ma:
                        pass
        self.assertEqual(err.text, "")
        self.assertEqual(rtcore.violations(), before + 3)
        self.assertEqual(len(self.got), 3)
        seqs = [r.sequence for r in self.got]
        self.assertEqual(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2])
        self.assertEqual({r.text for r in self.got}, {self.got[0].text})
        self.assertEqual(rtcore.last_report(), self.got[-1].text)

    def test_runs_on_the_violating_thread(self):
        _, (a, b, *_) = declare("thread", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("threadA", a), rtcore.Mutex("threadB", b)
        seen = []
        rtcore.on_violation(lambda r: seen.append((threading.get_ident(), rtcore.thread_id(), r)))
        box = {}

        def body():
            box["ident"], box["id"] = threading.get_ident(), rtcore.attach("violator")
            try:
                with mb:
                    with ma:
                        pass
            finally:
                rtcore.detach()

        finished, _, error = support.run_in_thread(body)
        self.assertTrue(finished)
        self.assertIsNone(error)
        self.assertEqual(len(seen), 1)
        ident, tid, r = seen[0]
        self.assertEqual(ident, box["ident"])
        self.assertEqual(tid, box["id"])
        self.assertEqual(r.thread_id, box["id"])
        self.assertEqual(r.thread_name, "violator")
        self.assertIn("'violator'", r.text)

    def test_callback_may_take_rtcore_locks(self):
        _, (a, b, z, *_) = declare("takes", "NONE < {0};\n{0} < {1};\n{1} < {2};\n")
        ma, mb = rtcore.Mutex("takesA", a), rtcore.Mutex("takesB", b)
        leaf = rtcore.Mutex(support.unique("cbleaf"))
        after = rtcore.Mutex(support.unique("cbZ"), z)
        rw = rtcore.RWLock(support.unique("cbrw"))
        seen = []

        def fn(report):
            # A leaf, a rank every held one precedes, an rwlock, and
            # rtcore's own report calls: none may deadlock or recurse.
            with after:
                with leaf:
                    seen.append((report, rtcore.violations(), rtcore.violations_dropped()))
            with rw.write():
                pass

        rtcore.on_violation(fn)
        before = rtcore.violations()

        def body():
            with mb:
                with ma:
                    return "done"

        finished, result, error = support.run_in_thread(body)
        self.assertTrue(finished, "a callback taking rtcore locks hung")
        self.assertIsNone(error)
        self.assertEqual(result, "done")
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0][1], before + 1)
        self.assertEqual(rtcore.violations(), before + 1, "the callback's own locks were in order")
        for m in (ma, mb, leaf, after):
            self.assertEqual(m._struct.state, 0)

    def test_violation_inside_the_callback_is_printed(self):
        src, (a, b, c, *_) = declare("inner", "NONE < {0};\n{0} < {1};\nNONE < {2};\n")
        ma, mb = rtcore.Mutex("innerA", a), rtcore.Mutex("innerB", b)
        mc = rtcore.Mutex(support.unique("innerC"), c)
        calls = []

        def fn(report):
            calls.append(report)
            with mc:  # c may not be taken while b is held: a violation
                pass

        rtcore.on_violation(fn)
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            with mb:
                with ma:
                    pass
        self.assertEqual(len(calls), 1, "a violation inside the callback went to the callback")
        self.assertEqual(rtcore.violations(), before + 2)
        self.assertIn("lock order violation (lock-rank mode report)", err.text)
        self.assertIn(f"wants mutex '{mc.name}' (rank {c})", err.text)
        self.assertEqual(err.text.count("lock order violation"), 1, err.text)
        self.assertEqual(rtcore.lockrank_mode(), "callback")

    def test_called_before_blocking(self):
        _, (a, b, *_) = declare("block", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("blockA", a), rtcore.Mutex("blockB", b)
        taken, release = threading.Event(), threading.Event()
        states = []

        def holder():
            with ma:
                taken.set()
                release.wait(10)

        def fn(report):
            # ma is still held by `holder`: the violating thread has not
            # blocked (or it could never get here).
            states.append((release.is_set(), ma._struct.state != 0))
            release.set()

        rtcore.on_violation(fn)
        h = threading.Thread(target=holder, daemon=True)
        h.start()
        self.assertTrue(taken.wait(30))

        def body():
            with mb:
                with ma:
                    return "acquired"

        finished, result, error = support.run_in_thread(body, timeout=30)
        self.assertTrue(finished)
        self.assertIsNone(error)
        self.assertEqual(result, "acquired")
        self.assertEqual(states, [(False, True)])
        h.join(30)
        self.assertFalse(h.is_alive())

    def test_exception_in_callback_is_reported_not_raised(self):
        _, (a, b, *_) = declare("raise", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("raiseA", a), rtcore.Mutex("raiseB", b)

        def fn(report):
            raise ValueError(f"boom {report.wanted.name}")

        rtcore.on_violation(fn)
        unraisable = []
        saved = sys.unraisablehook
        sys.unraisablehook = unraisable.append
        try:
            with mb:
                with ma:
                    inside = ma._struct.state != 0
        finally:
            sys.unraisablehook = saved
        self.assertTrue(inside, "the lock was taken after the callback raised")
        self.assertEqual(len(unraisable), 1)
        self.assertIsInstance(unraisable[0].exc_value, ValueError)
        self.assertEqual(str(unraisable[0].exc_value), "boom raiseA")
        self.assertEqual(ma._struct.state, 0)
        self.assertEqual(mb._struct.state, 0)

    def test_exception_in_callback_subprocess(self):
        proc = support.run_python(
            """
            import rtcore
            rtcore.load_ranks("NONE < pyA;\\npyA < pyB;\\n", "cb.ranks")
            a, b = rtcore.Mutex("mA", "pyA"), rtcore.Mutex("mB", "pyB")
            def fn(report):
                print("callback", report.reason, report.wanted.name, flush=True)
                raise RuntimeError("raised in the callback")
            rtcore.on_violation(fn)
            with b:
                with a:
                    print("after the inversion", flush=True)
            print("violations", rtcore.violations(), flush=True)
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertEqual(
            proc.stdout.splitlines(), ["callback order mA", "after the inversion", "violations 1"]
        )
        self.assertIn("Exception ignored on calling ctypes callback function", proc.stderr)
        self.assertIn("RuntimeError: raised in the callback", proc.stderr)
        self.assertNotIn("lock order violation", proc.stderr)

    def test_callback_set_at_exit(self):
        # A callback still set when the interpreter exits, with a thread
        # still violating: a clean exit.
        proc = support.run_python(
            """
            import threading, time
            import rtcore
            rtcore.load_ranks("NONE < pyA;\\npyA < pyB;\\n", "exit.ranks")
            a, b = rtcore.Mutex("mA", "pyA"), rtcore.Mutex("mB", "pyB")
            n = [0]
            def fn(report):
                n[0] += 1
            rtcore.on_violation(fn)
            def spin():
                while True:
                    with b:
                        with a:
                            pass
            threading.Thread(target=spin, daemon=True).start()
            while n[0] < 10:
                time.sleep(0.001)
            print("exiting", flush=True)
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertIn("exiting", proc.stdout)

    def test_violation_on_the_hook_thread(self):
        # A hook runs under rtcore's own `hooklock`: it is in the held stack
        # as kind 'rtcore', and the callable runs on rtcore's hook thread.
        _, (a, b, *_) = declare("hook", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("hookA", a), rtcore.Mutex("hookB", b)
        done = threading.Event()
        seen = []

        def fn(report):
            seen.append((threading.get_ident(), report))
            done.set()

        def hook():
            if not done.is_set():
                with mb:
                    with ma:
                        pass

        rtcore.on_violation(fn)
        with rtcore.add_hook(support.unique("violator"), 0.001, hook):
            self.assertTrue(done.wait(30), "the hook's violation never reached the callable")
        ident, r = seen[0]
        self.assertNotEqual(ident, threading.get_ident())
        self.assertEqual(r.held[0].kind, "rtcore")
        self.assertEqual((r.held[0].name, r.held[0].rank), ("hooklock", "hooklock"))
        self.assertFalse(r.held[0].conflicts)
        self.assertEqual([(h.name, h.conflicts) for h in r.held[1:]], [(mb.name, True)])
        self.assertEqual(r.wanted.name, ma.name)

    def test_replacing_the_callback(self):
        _, (a, b, *_) = declare("replace", "NONE < {0};\n{0} < {1};\n")
        ma, mb = rtcore.Mutex("replaceA", a), rtcore.Mutex("replaceB", b)
        second = []
        self.assertEqual(rtcore.on_violation(second.append), self.got.append)
        with mb:
            with ma:
                pass
        self.assertEqual(self.got, [])
        self.assertEqual(len(second), 1)
        self.assertEqual(rtcore.on_violation(None), second.append)


class QueueMode(unittest.TestCase):
    def setUp(self):
        drain()
        rtcore.set_lockrank_mode("queue")

    def tearDown(self):
        reset()

    def inversion(self, tag):
        _, (a, b, *_) = declare(tag, "NONE < {0};\n{0} < {1};\n")
        ma = rtcore.Mutex(support.unique(f"{tag}A"), a)
        mb = rtcore.Mutex(support.unique(f"{tag}B"), b)

        def invert():
            with mb:
                line = sys._getframe().f_lineno + 1
                with ma:
                    pass
            return line

        return ma, mb, invert

    def test_mode_name(self):
        self.assertEqual(rtcore.lockrank_mode(), "queue")
        rtcore.set_lockrank_mode(rtcore.RTC_LOCKRANK_QUEUE)
        self.assertEqual(rtcore.lockrank_mode(), "queue")

    def test_next_violation(self):
        self.assertIsNone(rtcore.next_violation())
        ma, mb, invert = self.inversion("queue")
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            line = invert()
            invert()
        self.assertEqual(err.text, "", "queue mode prints nothing")
        self.assertEqual(rtcore.violations(), before + 2)
        r1, r2 = rtcore.next_violation(), rtcore.next_violation()
        self.assertIsNone(rtcore.next_violation())
        for r in (r1, r2):
            self.assertIsInstance(r, LockReport)
            self.assertEqual(r.reason, "order")
            self.assertEqual(r.thread_id, rtcore.thread_id())
            self.assertEqual((r.wanted.name, r.wanted.file, r.wanted.line), (ma.name, HERE, line))
            self.assertEqual(r.wanted.address, addr(ma))
            self.assertEqual([h.name for h in r.held], [mb.name])
            self.assertTrue(r.held[0].conflicts)
            self.assertIn("lock order violation (lock-rank mode queue)", r.text)
        self.assertEqual(r2.sequence, r1.sequence + 1)
        self.assertEqual(rtcore.last_report(), r2.text)

    def test_report_outlives_its_locks(self):
        ma, mb, invert = self.inversion("outlive")
        names = (ma.name, mb.name)
        invert()
        ma.destroy()
        mb.destroy()
        del ma, mb
        r = rtcore.next_violation()
        self.assertEqual((r.wanted.name, r.held[0].name), names)

    def test_reports_stay_queued_after_mode_change(self):
        _, _, invert = self.inversion("stay")
        invert()
        rtcore.set_lockrank_mode("report")
        r = rtcore.next_violation()
        self.assertIsNotNone(r)
        self.assertIsNone(rtcore.next_violation())

    def test_poll_from_another_thread(self):
        ma, _, invert = self.inversion("poll")
        invert()
        finished, r, error = support.run_in_thread(rtcore.next_violation)
        self.assertTrue(finished)
        self.assertIsNone(error)
        self.assertEqual(r.thread_id, rtcore.thread_id())
        self.assertEqual(r.wanted.name, ma.name)

    def test_bound_and_dropped(self):
        _, _, invert = self.inversion("bound")
        dropped = rtcore.violations_dropped()
        for _ in range(300):
            invert()
        self.assertEqual(rtcore.violations_dropped(), dropped + 44)
        reports = drain()
        self.assertEqual(len(reports), 256)
        seqs = [r.sequence for r in reports]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 256)), "the oldest are kept")
        self.assertIsNone(rtcore.next_violation())
        invert()
        self.assertIsNotNone(rtcore.next_violation())
        self.assertEqual(rtcore.violations_dropped(), dropped + 44)


class ModesAtStart(unittest.TestCase):
    CODE = """
        import rtcore
        {setup}
        print("mode", rtcore.lockrank_mode(), flush=True)
        rtcore.load_ranks("NONE < pyA;\\npyA < pyB;\\n", "start.ranks")
        a, b = rtcore.Mutex("mA", "pyA"), rtcore.Mutex("mB", "pyB")
        with b:
            with a:
                pass
        r = rtcore.next_violation()
        print("queued", r is not None and r.wanted.name, flush=True)
    """

    def run_code(self, setup, env=None):
        # Indented as the code around {setup}, for run_python's dedent.
        setup = textwrap.indent(textwrap.dedent(setup).strip(), " " * 8).lstrip()
        proc = support.run_python(self.CODE.format(setup=setup), env=env)
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        return proc

    def test_init_queue(self):
        proc = self.run_code('rtcore.init(lockrank_mode="queue")')
        self.assertEqual(proc.stdout.splitlines(), ["mode queue", "queued mA"])
        self.assertNotIn("lock order violation", proc.stderr)

    def test_environment_queue(self):
        proc = self.run_code("", env={"RTCORE_DEBUG": "lockrank=queue"})
        self.assertEqual(proc.stdout.splitlines(), ["mode queue", "queued mA"])

    def test_init_callback_is_refused(self):
        proc = self.run_code(
            """
try:
    rtcore.init(lockrank_mode="callback")
except ValueError as e:
    print("name", type(e).__name__, flush=True)
try:
    rtcore.init(lockrank_mode=rtcore.RTC_LOCKRANK_CALLBACK)
except rtcore.RtcoreError as e:
    print("int", e.status_name, flush=True)
"""
        )
        self.assertEqual(
            proc.stdout.splitlines(),
            ["name ValueError", "int RTC_ERR_INVALID_ARGUMENT", "mode report", "queued False"],
        )


class AfterShutdown(unittest.TestCase):
    def test_report_calls_after_shutdown(self):
        proc = support.run_python(
            """
            import ctypes
            import rtcore
            def attempt(label, fn, *args):
                try:
                    fn(*args)
                except rtcore.RtcoreError as e:
                    print(label, e.status_name, flush=True)
                else:
                    print(label, "OK", flush=True)
            rtcore.load_ranks("NONE < pyA;\\npyA < pyB;\\n", "shut.ranks")
            a, b = rtcore.Mutex("mA", "pyA"), rtcore.Mutex("mB", "pyB")
            rtcore.set_lockrank_mode("queue")
            for _ in range(2):
                with b:
                    with a:
                        pass
            raw = rtcore._report_p()
            rtcore._lib.rtc_lockrank_next_report(ctypes.byref(raw))
            print("taken", bool(raw), flush=True)
            rtcore.shutdown()
            attempt("next", rtcore.next_violation)
            attempt("dropped", rtcore.violations_dropped)
            attempt("on", rtcore.on_violation, print)
            attempt("off", rtcore.on_violation, None)
            rtcore._lib.rtc_lockrank_report_free(raw)
            print("freed", flush=True)
            """
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertEqual(
            proc.stdout.splitlines(),
            [
                "taken True",
                "next RTC_ERR_SHUT_DOWN",
                "dropped RTC_ERR_SHUT_DOWN",
                "on RTC_ERR_SHUT_DOWN",
                "off RTC_ERR_SHUT_DOWN",
                "freed",
            ],
        )


class KeyedNesting(unittest.TestCase):
    """Keys order the locks of a `nestable:` rank; violations are read back
    through the queue."""

    def setUp(self):
        drain()
        rtcore.set_lockrank_mode("queue")
        _, (self.row, self.cell, *_) = declare(
            "keyed", "NONE < {0};\n{0} < {1};\nnestable: {0}, {1};\n"
        )

    def tearDown(self):
        reset()

    def rows(self, n):
        return [rtcore.Mutex(support.unique(f"row{i}"), self.row) for i in range(n)]

    def test_in_order_passes(self):
        m1, m2, m3 = self.rows(3)
        before = rtcore.violations()
        with m3.keyed(1):
            with m1.keyed(2):
                with m2.keyed(3):
                    pass
        m2.lock(key=10)
        m1.lock(key=11)
        m3.lock(key=2**64 - 1)
        for m in (m2, m1, m3):
            m.unlock()
        self.assertEqual(rtcore.violations(), before)
        self.assertIsNone(rtcore.next_violation())

    def test_out_of_order_is_reported(self):
        m1, m2 = self.rows(2)
        before = rtcore.violations()
        line1 = sys._getframe().f_lineno + 1
        with m1.keyed(5):
            line2 = sys._getframe().f_lineno + 1
            with m2.keyed(3):
                pass
        self.assertEqual(rtcore.violations(), before + 1)
        r = rtcore.next_violation()
        self.assertEqual(r.reason, "key order")
        self.assertEqual(
            r.wanted,
            LockInfo(addr(m2), m2.name, self.row, "mutex", "exclusive", 3, HERE, line2),
        )
        self.assertEqual(
            r.held,
            [LockInfo(addr(m1), m1.name, self.row, "mutex", "exclusive", 5, HERE, line1, False, True)],
        )
        self.assertIn("lock key order violation (lock-rank mode queue)", r.text)
        self.assertIn(f"(rank {self.row}, key 0x3)", r.text)
        self.assertIn(f"(rank {self.row}, key 0x5)", r.text)
        self.assertIn(f"rank {self.row} is nestable", r.text)

    def test_lock_method_with_key(self):
        m1, m2 = self.rows(2)
        m1.lock(key=7)
        line = sys._getframe().f_lineno + 1
        m2.lock(key=7)  # equal keys: not strictly increasing
        m2.unlock()
        m1.unlock()
        r = rtcore.next_violation()
        self.assertEqual(r.reason, "key order")
        self.assertEqual((r.wanted.key, r.wanted.line, r.held[0].key), (7, line, 7))

    def test_only_same_rank_keys_conflict(self):
        m1, m2, m3 = self.rows(3)
        cell = rtcore.Mutex(support.unique("cell"), self.cell)
        with m1.keyed(1):
            with m2.keyed(9):
                with cell.keyed(2):  # another rank: its own key order
                    with m3.keyed(5):  # row after cell: an order violation too
                        pass
        r = rtcore.next_violation()
        self.assertIsNotNone(r)
        self.assertIsNone(rtcore.next_violation())
        self.assertEqual(r.wanted.name, m3.name)
        self.assertEqual([h.name for h in r.held], [m1.name, m2.name, cell.name])
        self.assertEqual([h.conflicts for h in r.held][2], True, "cell may not precede row")

    def test_key_conflicts_flagged_alongside_an_order_violation(self):
        """Held: row key 1, row key 9, then cell (row < cell). Wanted: row
        key 5. That is an order violation (cell may not be held) and a key
        order one (key 5 is not above the held row key 9): the report has
        reason 'order' and flags both cell and the row of key 9."""
        m1, m2, m3 = self.rows(3)
        cell = rtcore.Mutex(support.unique("cell"), self.cell)
        with m1.keyed(1):
            with m2.keyed(9):
                with cell.keyed(2):
                    with m3.keyed(5):
                        pass
        r = rtcore.next_violation()
        self.assertEqual(r.reason, "order")
        self.assertEqual([(h.name, h.conflicts) for h in r.held], [(m1.name, False), (m2.name, True), (cell.name, True)])

    def test_plain_locks_use_the_address(self):
        m1, m2 = sorted(self.rows(2), key=addr)
        with m1:
            with m2:
                pass
        self.assertIsNone(rtcore.next_violation())
        with m2:
            with m1:
                pass
        r = rtcore.next_violation()
        self.assertEqual(r.reason, "key order")
        self.assertEqual((r.wanted.key, r.held[0].key), (addr(m1), addr(m2)))

    def test_keys_on_a_rank_that_is_not_nestable(self):
        _, (plain, *_) = declare("plain", "NONE < {0};\n")
        p1, p2 = (rtcore.Mutex(support.unique(f"plain{i}"), plain) for i in range(2))
        with p1.keyed(1):
            with p2.keyed(2):
                pass
        r = rtcore.next_violation()
        self.assertIsNotNone(r, "two locks of a rank that is not nestable")
        self.assertEqual(r.reason, "order")

    def test_keyed_rwlocks(self):
        r1, r2 = (rtcore.RWLock(support.unique(f"rwrow{i}"), self.row) for i in range(2))
        with r1.read(key=1):
            with r2.write(key=2):
                pass
        self.assertIsNone(rtcore.next_violation())
        with r2.write(key=2):
            line = sys._getframe().f_lineno + 1
            r1.read_lock(key=1)
            r1.unlock()
        r = rtcore.next_violation()
        self.assertEqual(r.reason, "key order")
        self.assertEqual(
            r.wanted, LockInfo(addr(r1), r1.name, self.row, "rwlock", "shared", 1, HERE, line)
        )
        self.assertEqual((r.held[0].mode, r.held[0].key, r.held[0].conflicts), ("exclusive", 2, True))

    def test_keyed_context_manager(self):
        (m,) = self.rows(1)
        guard = m.keyed(4)
        self.assertIn("key=4", repr(guard))
        with guard as entered:
            self.assertIs(entered, m)
            self.assertNotEqual(m._struct.state, 0)
        self.assertEqual(m._struct.state, 0)
        with self.assertRaises(KeyError):
            with m.keyed(4):
                raise KeyError("x")
        self.assertEqual(m._struct.state, 0)
        with m.keyed(4):
            with self.assertRaises(RtcoreError) as cm:
                m.lock(key=5)
            self.assertEqual(cm.exception.status, rtcore.RTC_ERR_WOULD_DEADLOCK)
            self.assertEqual(cm.exception.function, "rtc_mutex_lock_keyed_at")
        drain()

    def test_bad_keys(self):
        (m,) = self.rows(1)
        before = rtcore.last_error()
        for bad in (-1, 2**64):
            with self.assertRaises(OverflowError):
                m.lock(key=bad)
            with self.assertRaises(OverflowError):
                m.keyed(bad)
        for bad in ("1", 1.0):
            with self.assertRaises(TypeError):
                m.lock(key=bad)
        self.assertEqual(rtcore.last_error(), before)
        self.assertEqual(m._struct.state, 0)


if __name__ == "__main__":
    unittest.main()

"""The lock-order checker in report mode, in this process (each test uses
ranks of its own: a report is printed once per (held, wanted) rank pair)."""

import sys
import threading
import unittest

import rtcore

from . import support


def declare(tag):
    """Declare `NONE < A; A < B;` with fresh names; return (src, A, B)."""
    src = support.unique(f"{tag}_src") + ".ranks"
    a, b = support.unique(f"py{tag}A"), support.unique(f"py{tag}B")
    rtcore.load_ranks(f"# {tag}\nNONE < {a};\n{a} < {b};\n", src)
    return src, a, b


class ReportMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rtcore.set_lockrank_mode("report")

    def test_mode_is_report(self):
        self.assertEqual(rtcore.lockrank_mode(), "report")
        rtcore.set_lockrank_mode(rtcore.RTC_LOCKRANK_REPORT)
        self.assertEqual(rtcore.lockrank_mode(), "report")
        rtcore.set_lockrank_mode("default")  # default selects report
        self.assertEqual(rtcore.lockrank_mode(), "report")

    def test_declared_order_is_silent(self):
        _, a, b = declare("ok")
        ma, mb = rtcore.Mutex("okA", a), rtcore.Mutex("okB", b)
        before, report = rtcore.violations(), rtcore.last_report()
        with ma:
            with mb:
                pass
        self.assertEqual(rtcore.violations(), before)
        self.assertEqual(rtcore.last_report(), report)

    def test_inversion_is_reported(self):
        src, a, b = declare("inv")
        name_a, name_b = support.unique("mutexA"), support.unique("mutexB")
        ma, mb = rtcore.Mutex(name_a, a), rtcore.Mutex(name_b, b)
        here = sys._getframe().f_code.co_filename
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            line_b = sys._getframe().f_lineno + 1
            with mb:
                line_a = sys._getframe().f_lineno + 1
                with ma:
                    pass
        self.assertEqual(rtcore.violations(), before + 1)
        report = rtcore.last_report()
        # The report is printed on stderr, as returned by last_report().
        self.assertEqual(err.text, report)
        self.assertIn("lock order violation", report)
        self.assertIn("lock-rank mode report", report)
        self.assertIn(f"(tid {threading.get_native_id()})", report)
        self.assertIn(f"wants mutex '{name_a}' (rank {a}) at {here}:{line_a}", report)
        self.assertIn(f"while holding mutex '{name_b}' (rank {b}) locked at {here}:{line_b}", report)
        self.assertIn(f"{src}:3: {a} < {b}", report)
        self.assertIn("test_lockrank.py", report)

        # The same pair again: counted every time, printed once.
        with support.CaptureStderr() as err:
            with mb:
                with ma:
                    pass
        self.assertEqual(err.text, "")
        self.assertEqual(rtcore.violations(), before + 2)
        self.assertEqual(rtcore.last_report(), report)

    def test_lock_method_sites(self):
        src, a, b = declare("meth")
        ma, mb = rtcore.Mutex("methA", a), rtcore.Mutex("methB", b)
        here = sys._getframe().f_code.co_filename
        before = rtcore.violations()
        with support.CaptureStderr() as err:
            line_b = sys._getframe().f_lineno + 1
            mb.lock()
            line_a = sys._getframe().f_lineno + 1
            ma.lock()
            ma.unlock()
            mb.unlock()
        self.assertIn("lock order violation", err.text)
        self.assertEqual(rtcore.violations(), before + 1)
        report = rtcore.last_report()
        self.assertIn(f"at {here}:{line_a}", report)
        self.assertIn(f"locked at {here}:{line_b}", report)

    def test_abba_across_two_threads(self):
        src, a, b = declare("abba")
        name_a, name_b = support.unique("abbaA"), support.unique("abbaB")
        ma, mb = rtcore.Mutex(name_a, a), rtcore.Mutex(name_b, b)
        before = rtcore.violations()
        tids = {}

        def first():
            tids["first"] = threading.get_native_id()
            with ma:
                with mb:
                    pass

        def second():
            tids["second"] = threading.get_native_id()
            with mb:
                with ma:
                    pass

        t1 = threading.Thread(target=first, name="abba-1")
        t1.start()
        t1.join(30)
        self.assertFalse(t1.is_alive())
        self.assertEqual(rtcore.violations(), before, "A then B is the declared order")
        t2 = threading.Thread(target=second, name="abba-2")
        with support.CaptureStderr() as err:
            t2.start()
            t2.join(30)
        self.assertIn(f"(tid {tids['second']})", err.text)
        self.assertFalse(t2.is_alive())
        self.assertEqual(rtcore.violations(), before + 1)
        report = rtcore.last_report()
        self.assertIn(f"(tid {tids['second']})", report)
        self.assertIn(f"wants mutex '{name_a}' (rank {a})", report)
        self.assertIn(f"while holding mutex '{name_b}' (rank {b})", report)
        self.assertIn(f"{src}:3: {a} < {b}", report)

    def test_try_lock_is_not_order_checked(self):
        _, a, b = declare("try")
        ma, mb = rtcore.Mutex("tryA", a), rtcore.Mutex("tryB", b)
        before = rtcore.violations()
        with mb:
            self.assertTrue(ma.try_lock())
            ma.unlock()
        self.assertEqual(rtcore.violations(), before)

    def test_unranked_is_a_leaf(self):
        _, a, _ = declare("leaf")
        leaf = rtcore.Mutex(support.unique("leaf"))
        ranked = rtcore.Mutex(support.unique("ranked"), a)
        before = rtcore.violations()
        with ranked:
            with leaf:  # fine: a leaf may be taken last
                pass
        self.assertEqual(rtcore.violations(), before)
        with support.CaptureStderr() as err:
            with leaf:
                with ranked:  # not fine: nothing may be taken while a leaf is held
                    pass
        self.assertIn("lock order violation", err.text)
        self.assertEqual(rtcore.violations(), before + 1)
        self.assertIn("unranked", rtcore.last_report())

    def test_off_mode_at_run_time(self):
        _, a, b = declare("off")
        ma, mb = rtcore.Mutex("offA", a), rtcore.Mutex("offB", b)
        before = rtcore.violations()
        rtcore.set_lockrank_mode("off")
        try:
            self.assertEqual(rtcore.lockrank_mode(), "off")
            with mb:
                with ma:
                    pass
            self.assertEqual(rtcore.violations(), before)
        finally:
            rtcore.set_lockrank_mode("report")
        self.assertEqual(rtcore.lockrank_mode(), "report")
        with support.CaptureStderr() as err:
            with mb:
                with ma:
                    pass
        self.assertIn("lock order violation", err.text)
        self.assertEqual(rtcore.violations(), before + 1)


class ModesInSubprocesses(unittest.TestCase):
    INVERSION = """
        import sys
        import rtcore
        {setup}
        rtcore.load_ranks("NONE < pyA;\\npyA < pyB;\\n", "abort.ranks")
        a, b = rtcore.Mutex("mA", "pyA"), rtcore.Mutex("mB", "pyB")
        print("mode", rtcore.lockrank_mode(), flush=True)
        with b:
            with a:
                print("after the inversion", flush=True)
        print("violations", rtcore.violations(), flush=True)
        try:
            a.unlock()
        except rtcore.RtcoreError as e:
            print("misuse", e.status_name, flush=True)
    """

    def run_inversion(self, setup, env=None):
        return support.run_python(self.INVERSION.format(setup=setup), env=env)

    def assert_aborted(self, proc):
        self.assertEqual(proc.returncode, -6, support.describe(proc))
        self.assertIn("lock order violation", proc.stderr)
        self.assertIn("lock-rank mode abort", proc.stderr)
        self.assertIn("wants mutex 'mA' (rank pyA) at <string>:", proc.stderr)
        self.assertIn("abort.ranks:2: pyA < pyB", proc.stderr)
        self.assertIn("mode abort", proc.stdout)
        self.assertNotIn("after the inversion", proc.stdout)

    def test_abort_mode_set_at_run_time(self):
        self.assert_aborted(self.run_inversion('rtcore.set_lockrank_mode("abort")'))

    def test_abort_mode_from_init(self):
        self.assert_aborted(self.run_inversion('rtcore.init(lockrank_mode="abort")'))

    def test_abort_mode_from_environment(self):
        self.assert_aborted(self.run_inversion("", env={"RTCORE_DEBUG": "lockrank=abort"}))

    def test_environment_off(self):
        proc = self.run_inversion("", env={"RTCORE_DEBUG": "lockrank=off"})
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertIn("mode off", proc.stdout)
        self.assertIn("after the inversion", proc.stdout)
        self.assertIn("violations 0", proc.stdout)
        self.assertIn("misuse RTC_ERR_NOT_OWNER", proc.stdout)
        self.assertNotIn("lock order violation", proc.stderr)

    def test_environment_overrides_init(self):
        proc = self.run_inversion(
            'rtcore.init(lockrank_mode="abort")', env={"RTCORE_DEBUG": "lockrank=off"}
        )
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertIn("mode off", proc.stdout)
        self.assertIn("violations 0", proc.stdout)

    def test_default_is_report(self):
        proc = self.run_inversion("")
        self.assertEqual(proc.returncode, 0, support.describe(proc))
        self.assertIn("mode report", proc.stdout)
        self.assertIn("after the inversion", proc.stdout)
        self.assertIn("violations 1", proc.stdout)
        self.assertIn("misuse RTC_ERR_NOT_OWNER", proc.stdout)
        self.assertEqual(proc.stderr.count("lock order violation"), 1, proc.stderr)


if __name__ == "__main__":
    unittest.main()

"""
Tests for .ci/run's summary: whatever trial reports, the last line is ``tests: N passed, M failed``
and the exit status is 0 only when nothing failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI_RUN = os.path.join(ROOT, ".ci", "run")

# A test module with one of each outcome trial knows; run by real trial below.
MIXED = textwrap.dedent(
    """
    from twisted.trial.unittest import SkipTest, SynchronousTestCase

    class Mixed(SynchronousTestCase):
        def test_pass_1(self):
            pass

        def test_pass_2(self):
            pass

        def test_skip(self):
            raise SkipTest("not here")

        def test_expected_failure(self):
            self.fail("known")
        test_expected_failure.todo = "known bug"

        def test_unexpected_success(self):
            pass
        test_unexpected_success.todo = "fixed meanwhile"
    """
)
BROKEN = textwrap.dedent(
    """
    from twisted.trial.unittest import SynchronousTestCase

    class Broken(SynchronousTestCase):
        def test_pass(self):
            pass

        def test_failure(self):
            self.assertEqual(1, 2)

        def test_error(self):
            raise RuntimeError("boom")
    """
)


class SummaryTests(SynchronousTestCase):
    def summarize(self, log: str, status: int, lint_failed: int = 0) -> tuple[int, list[str]]:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(log)
        done = subprocess.run(["bash", CI_RUN, "--summarize", path, str(status), str(lint_failed)],
                              capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
        return done.returncode, done.stdout.splitlines()

    def trial(self, **modules: str) -> tuple[str, int]:
        """Real trial output and exit status for the given test modules."""
        base = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(base, "cisample"))
        open(os.path.join(base, "cisample", "__init__.py"), "w").close()
        for name, text in modules.items():
            with open(os.path.join(base, "cisample", f"{name}.py"), "w", encoding="utf-8") as f:
                f.write(text)
        done = subprocess.run([sys.executable, "-m", "twisted.trial", "cisample"], cwd=base, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        return done.stdout + done.stderr, done.returncode

    def test_real_pass_with_skips_and_todos(self) -> None:
        log, status = self.trial(test_mixed=MIXED)
        self.assertEqual(status, 0, log)
        code, lines = self.summarize(log, status)
        self.assertEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 3 passed, 0 failed")
        self.assertEqual(lines[-2], "ci: 1 skipped, 1 expected failures")

    def test_lint_finding_fails_a_green_run(self) -> None:
        log, status = self.trial(test_mixed=MIXED)
        code, lines = self.summarize(log, status, lint_failed=1)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 3 passed, 1 failed")

    def test_real_failures_and_errors(self) -> None:
        log, status = self.trial(test_mixed=MIXED, test_broken=BROKEN)
        self.assertNotEqual(status, 0)
        code, lines = self.summarize(log, status)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 4 passed, 2 failed")

    def test_real_import_error(self) -> None:
        log, status = self.trial(test_syntax="def broken(:\n")
        code, lines = self.summarize(log, status)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 0 passed, 1 failed")

    def test_no_summary(self) -> None:
        """trial killed mid-run (out of memory, timeout): a failure, not a silent pass."""
        code, lines = self.summarize("tests.test_x\n  Case\n    test_a ...", 137)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 0 passed, 1 failed")

    def test_status_and_summary_disagree(self) -> None:
        code, lines = self.summarize("Ran 2 tests in 0.1s\n\nPASSED (successes=2)\n", 1)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 2 passed, 1 failed")

    def test_no_tests_ran(self) -> None:
        code, lines = self.summarize("Ran 0 tests in 0.001s\n\nPASSED\n", 0)
        self.assertNotEqual(code, 0)
        self.assertEqual(lines[-1], "tests: 0 passed, 1 failed")

    def test_plain_pass(self) -> None:
        code, lines = self.summarize("Ran 404 tests in 85.3s\n\nPASSED (successes=404)\n", 0)
        self.assertEqual((code, lines), (0, ["tests: 404 passed, 0 failed"]))

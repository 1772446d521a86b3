"""A test that hangs after its timeout fails, naming itself with its stacks, instead of holding the
run until CI's own limit. pytest-timeout and pytest's faulthandler both stop watching once a phase
has failed, so a teardown that hangs after a failed call would never end: tests/conftest.py watches
each phase. Checked on a small suite run with the project's hooks and the suite's own options."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]

CONFTEST = """
import tests.conftest as project
from tests.conftest import pytest_configure, pytest_runtest_call_watched, pytest_runtest_setup_watched
from tests.conftest import pytest_runtest_teardown_watched

project.HANG_MARGIN_SECONDS = 1.0
"""

MODULE = """
import time
import pytest

@pytest.fixture
def stuck_on_the_way_out():
    yield
    time.sleep(600)  # as a loop's executor waiting on a thread that never returns

@pytest.mark.timeout(1)
def test_fails_then_hangs_in_teardown(stuck_on_the_way_out):
    assert False, "the failure before the hang"

def test_after_it():
    pass
"""


def test_a_teardown_hanging_after_a_failure_ends_the_worker_with_its_stacks(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_hangs.py").write_text(MODULE)
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *shlex.split(addopts),
         "--rootdir", str(suite), "-c", "/dev/null", str(suite)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "crashed while running 'test_hangs.py::test_fails_then_hangs_in_teardown'" in output, output[-3000:]
    assert 'test_hangs.py", line 8 in stuck_on_the_way_out' in output, output[-3000:]  # the stacks
    assert "the failure before the hang" in output, output[-3000:]

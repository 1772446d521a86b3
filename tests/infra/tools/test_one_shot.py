"""stacks/tools/one_shot.py: a command run through it answers as `python -m` would (its output, its exit
status), with the garbage collector off for the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _one_shot(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "command.py").write_text(source)
    env = dict(os.environ) | {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "stacks.tools.one_shot", "command", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_the_output_is_whole_and_the_arguments_reach_the_command(tmp_path: Path) -> None:
    """Printed into a pipe's buffer, never flushed by the command: all of it arrives, before the fast exit."""
    done = _one_shot(tmp_path, "import sys\nfor n in range(20000):\n    print(n, sys.argv[1:])\n"
                               "print('to stderr', file=sys.stderr)\n", "check", "--stack", "x")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == 20000 and lines[-1] == "19999 ['check', '--stack', 'x']"
    assert done.stderr == "to stderr\n"


@pytest.mark.parametrize(("exit_with", "status", "stderr"),
                         [("3", 3, ""), ("None", 0, ""), ("'refused'", 1, "refused\n")])
def test_the_exit_status_is_the_commands(tmp_path: Path, exit_with: str, status: int, stderr: str) -> None:
    done = _one_shot(tmp_path, f"import sys\nif __name__ == '__main__':\n    sys.exit({exit_with})\n")
    assert (done.returncode, done.stderr) == (status, stderr)


def test_the_command_runs_as_main_without_the_collector(tmp_path: Path) -> None:
    done = _one_shot(tmp_path, "import gc\nprint(__name__, gc.isenabled())\n")
    assert done.stdout == "__main__ False\n"


def test_an_exception_ends_as_python_ends_it(tmp_path: Path) -> None:
    done = _one_shot(tmp_path, "raise RuntimeError('broken')\n")
    assert done.returncode == 1
    assert "RuntimeError: broken" in done.stderr


def test_no_module_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "stacks.tools.one_shot"], capture_output=True, text=True,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT)}, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (2, "usage: python -m stacks.tools.one_shot MODULE [ARGS...]\n")

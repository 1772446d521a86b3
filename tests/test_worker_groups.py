"""The README's test command runs on pytest-xdist workers: a test module's fixtures (a dispatcher
process, a bot or browser run its tests share) must still start once, on one worker, as in a serial
run. `--dist loadgroup` does not do that under pytest 9 (xdist 3.8 sets a node id attribute pytest no
longer reads, so its groups are ignored) and `--dist load` splits modules; `--dist loadfile` does.
Checked on a small suite run with the options the suite itself runs with (pyproject's addopts)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]

MODULE = '''
import os
import pytest

@pytest.fixture(scope="module")
def started(tmp_path_factory):
    with open(os.environ["STARTS"], "a") as starts:
        starts.write(f"{__name__} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("n", range(6))
def test_shares_the_module_fixture(started, n):
    pass
'''


def test_each_modules_fixtures_start_once_on_one_worker(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "-n" in shlex.split(addopts), addopts  # the suite runs on workers
    for name in ("test_a", "test_b", "test_c"):
        (suite / f"{name}.py").write_text(MODULE)
    starts = tmp_path / "starts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *shlex.split(addopts),
         "--rootdir", str(suite), "-c", "/dev/null", str(suite)],
        cwd=ROOT, env={"STARTS": str(starts), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = starts.read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in lines) == ["test_a", "test_b", "test_c"], lines
    options = shlex.split(addopts)
    workers = int(options[options.index("-n") + 1])
    assert {line.split()[1] for line in lines} == {f"gw{n}" for n in range(workers)}, lines  # and each had work

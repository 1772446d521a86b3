"""The test files go to the pytest-xdist workers longest first by an earlier run's seconds, unknown
files before them, and `--store-durations` records those seconds from a run (tests/support/longest_first.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.longest_first import file_of, longest_first, merged_durations, read_durations

ROOT = Path(__file__).parents[1]


def test_a_tests_file_is_its_node_id_up_to_the_first_separator() -> None:
    assert file_of("tests/a/test_b.py::TestC::test_d[x::y]") == "tests/a/test_b.py"


def test_known_files_go_longest_first_after_the_unknown_ones_in_their_given_order() -> None:
    seconds = {"short.py": 2.0, "long.py": 130.0, "middle.py": 40.0, "tie.py": 40.0}
    given = ["short.py", "new_b.py", "tie.py", "long.py", "new_a.py", "middle.py"]
    assert longest_first(given, seconds) == ["new_b.py", "new_a.py", "long.py", "tie.py", "middle.py", "short.py"]


def test_a_run_replaces_its_files_seconds_and_keeps_the_others_that_still_exist(tmp_path: Path) -> None:
    (tmp_path / "kept.py").write_text("")
    (tmp_path / "ran.py").write_text("")
    known = {"kept.py": 7.0, "ran.py": 99.0, "deleted.py": 5.0}
    assert merged_durations(known, {"ran.py": 1.234, "new.py": 3.0}, tmp_path) == {
        "kept.py": 7.0, "new.py": 3.0, "ran.py": 1.2,
    }  # fmt: skip


def test_a_missing_durations_file_knows_no_file_and_a_broken_one_says_how_to_fix_it(tmp_path: Path) -> None:
    assert read_durations(tmp_path / "absent.json") == {}
    broken = tmp_path / "durations.json"
    for text in ("[1, 2]", "{", '{"a.py": "slow"}'):
        broken.write_text(text)
        with pytest.raises(pytest.UsageError, match="--store-durations"):
            read_durations(broken)


RECORDS_ITS_START = '''
import os

def test_{name}_{n}():
    with open(os.environ["STARTS"], "a") as starts:
        starts.write("{name}\\n")
'''


def test_a_worker_runs_the_files_in_that_order_and_the_run_records_each_files_seconds(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, tests in (("many", 5), ("new", 2), ("one", 1)):  # pytest-xdist alone: many, new, one
        (suite / f"test_{name}.py").write_text("".join(RECORDS_ITS_START.format(name=name, n=n) for n in range(tests)))
    durations = suite / "durations.json"
    durations.write_text(json.dumps({"test_many.py": 1.0, "test_one.py": 100.0, "test_gone.py": 50.0}))
    starts = tmp_path / "starts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.support.longest_first",
         "-n", "1", "--dist", "loadfile", "--store-durations", "-o", "durations_file=durations.json",
         "--rootdir", str(suite), "-c", "/dev/null", str(suite)],
        cwd=ROOT, env={"STARTS": str(starts), "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert starts.read_text().split() == ["new"] * 2 + ["one"] + ["many"] * 5  # one worker: the order handed out
    recorded = json.loads(durations.read_text())
    assert sorted(recorded) == ["test_many.py", "test_new.py", "test_one.py"], recorded  # the gone file dropped
    assert recorded["test_one.py"] < 100.0, recorded  # this run's seconds, not the earlier ones

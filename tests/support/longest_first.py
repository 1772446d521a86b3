"""Longest test files first on the pytest-xdist workers, so that both finish together.

`--dist loadfile` hands each worker whole files, and pytest-xdist orders them by their count of tests
(`LoadScopeScheduling.schedule`): a file of one two-minute test (a canary, a release on a sandboxed
cluster) comes last, and one worker runs it alone while the other has nothing left. Here the files go
longest first by their seconds in an earlier run (`tests/durations.json`): what is left at the end is
short on both workers. A file the durations file does not know (a new one) goes first, before all the
known ones, in pytest-xdist's own order: it may be long, and its seconds are unknown.

`pytest --store-durations` writes each file's seconds (setup, call and teardown of all its tests,
module fixtures included) from that run into the durations file, keeping the other files it knew that
still exist: a full run (`pytest --store-durations`) refreshes all of it. docs/testing.md, "Workers".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

DURATIONS_INI = "durations_file"
DEFAULT_DURATIONS_FILE = "tests/durations.json"


def file_of(nodeid: str) -> str:
    """A test's file, as `--dist loadfile` groups them: `tests/a/test_b.py::test_c[1]` -> `tests/a/test_b.py`."""
    return nodeid.split("::", 1)[0]


def longest_first(files: Iterable[str], seconds: Mapping[str, float]) -> list[str]:
    """The files in the order to run them: unknown ones first in the order given, then the known ones
    by their seconds, longest first (ties in the order given)."""
    given = list(files)
    position = {name: index for index, name in enumerate(given)}
    return sorted(given, key=lambda name: (name in seconds, -seconds.get(name, 0.0), position[name]))


def read_durations(path: Path) -> dict[str, float]:
    """The seconds per file recorded at `path`; none when there is no such file yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        recorded = json.loads(text)
        return {str(name): float(seconds) for name, seconds in recorded.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise pytest.UsageError(
            f"{path} is not a JSON object of test file -> seconds ({error}); "
            "delete it, or rewrite it with `pytest --store-durations`"
        ) from error


def merged_durations(known: Mapping[str, float], measured: Mapping[str, float], root: Path) -> dict[str, float]:
    """What the durations file holds after a run: this run's files as measured, the others as they were
    while they still exist under `root`."""
    kept = {name: seconds for name, seconds in known.items() if name not in measured and (root / name).is_file()}
    return dict(sorted({**kept, **{name: round(seconds, 1) for name, seconds in measured.items()}}.items()))


def durations_path(config: pytest.Config) -> Path:
    return config.rootpath / str(config.getini(DURATIONS_INI))


class LongestFirstScheduling(LoadFileScheduling):  # type: ignore[misc]  # pytest-xdist ships no types
    """`--dist loadfile`, the next file given to a worker always the longest one left."""

    def __init__(self, config: pytest.Config, log: Producer | None = None, *, seconds: Mapping[str, float]) -> None:
        super().__init__(config, log)
        self.seconds = dict(seconds)

    def _assign_work_unit(self, node: object) -> None:
        # Reordered at every hand-out, not once: a crashed worker's files come back at the queue's end.
        # The queue is nearly sorted then, which sorting does in linear time.
        for name in longest_first(self.workqueue, self.seconds):
            self.workqueue.move_to_end(name)
        super()._assign_work_unit(node)


class DurationRecorder:
    """Adds up each file's seconds as the reports come in (from both workers, on the controller), and
    writes them at the end of the session."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path, self.root = path, root
        self.measured: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = file_of(report.nodeid)
        self.measured[name] = self.measured.get(name, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.measured:
            return
        durations = merged_durations(read_durations(self.path), self.measured, self.root)
        self.path.write_text(json.dumps(durations, indent=1) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations", action="store_true",
        help=f"write each test file's seconds in this run to the durations file ({DEFAULT_DURATIONS_FILE}), "
        "which orders the files on the workers longest first",
    )  # fmt: skip
    parser.addini(DURATIONS_INI, f"each test file's seconds in an earlier run (default {DEFAULT_DURATIONS_FILE})",
                  default=DEFAULT_DURATIONS_FILE)  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):  # the controller only
        config.pluginmanager.register(DurationRecorder(durations_path(config), config.rootpath), "durations-recorder")


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before pytest-xdist's own, which serves every mode
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LongestFirstScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None  # pytest-xdist's own scheduler for the other modes
    return LongestFirstScheduling(config, log, seconds=read_durations(durations_path(config)))

"""A pytest plugin for bench/mutation.py: which test runs which line of one module.

    MUTATION_TRACE_FILE=/abs/path/module.py MUTATION_TRACE_OUT=out.json pytest -p bench.line_coverage ...

writes {"import": [lines run outside any test], "tests": {nodeid: [lines]}, "order": [nodeids]}. The runner then runs a
mutant only against the tests that ran its statement (a mutant of a line no test runs survives
without a run), which is what makes every mutant of the slow modules affordable. It can only
*miss* a test (code run in a child process is not traced), never pick one that could not fail:
a miss shows up as a survivor to look at, never as a kill.

sys.settrace, not coverage.py: Python 3.11 has no sys.monitoring, and only frames of the traced
file get a line tracer, so the other code pays one call event per frame.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import pytest

Tracer = Callable[[FrameType, str, Any], Any]

_target = os.path.realpath(os.environ.get("MUTATION_TRACE_FILE", ""))
_current: str | None = None  # the running test's node id; None: import, collection, session fixtures
_lines: defaultdict[str | None, set[int]] = defaultdict(set)
_order: list[str] = []  # every test, in the order it ran
_is_target: dict[str, bool] = {}


def _local(frame: FrameType, event: str, arg: Any) -> Tracer:
    if event == "line":
        _lines[_current].add(frame.f_lineno)
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Tracer | None:
    name = frame.f_code.co_filename
    hit = _is_target.get(name)
    if hit is None:
        hit = _is_target[name] = os.path.realpath(name) == _target
    if hit:
        _lines[_current].add(frame.f_lineno)
        return _local
    return None


if _target:  # from now on, not from pytest_configure: conftest.py files import modules before that
    threading.settrace(_global)
    sys.settrace(_global)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    global _current
    _current = item.nodeid
    _order.append(item.nodeid)
    yield
    _current = None


def pytest_unconfigure(config: pytest.Config) -> None:
    sys.settrace(None)
    threading.settrace(None)
    out = os.environ.get("MUTATION_TRACE_OUT")
    if out:
        tests = {test: sorted(lines) for test, lines in _lines.items() if test is not None}
        with open(out, "w") as handle:
            json.dump({"import": sorted(_lines.get(None, set())), "tests": tests, "order": _order}, handle)

"""The test process keeps real-time clients (a carrier's 20 ms frames, a Pipecat client's microphone,
aiortc peers) on a heap that grows over the run to about two million objects (every module's imports,
the Pulumi programs under mocks): a full garbage collection then stops the process for 1-2 s on a
loaded 2-core host (measured with a gc callback over a whole run). A client silent for a second is a
caller gone quiet to the bot: Pipecat's VAD ends the user's turn after one second without audio
(`audio_idle_timeout`), and an echo came back cut short.

So before each module, what the earlier modules left alive is collected once and frozen (`gc.freeze`,
as pre-fork servers do): later collections scan only what is new, the pauses stay short, and garbage
made from then on is still collected.

A test that hangs past its timeout fails with every thread's stack instead of holding the run until
CI's own limit ends it. pytest-timeout and pytest's own faulthandler timer both stop watching once a
phase fails (`pytest_exception_interact`), so a teardown that hangs after a failed call (a task
cancelled by the loop's shutdown that another awaits, a fixture waiting on a process) would never end.
So each phase (setup, call, teardown) is given the test's timeout plus a margin, watched
by faulthandler: past it, the stacks go to stderr and the worker exits, which pytest-xdist reports as
"worker crashed while running" the test, naming it.

Property tests (Hypothesis) check what holds, not how fast: its default 200 ms deadline per example,
and its health check on slow generation, count wall time, and a process waiting for a core on a
busy machine fails them as "Unreliable test timings" though nothing is wrong. Both are off here.

A test leaves the root logger as it found it: a handler left on a test's captured stream (closed after
the test) turns every later test's log line in that worker into "--- Logging error ---" on stderr.

The workers get the test files longest first, from the seconds of an earlier run
(`tests/support/longest_first.py`), so that they finish together.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import sys
from collections.abc import Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.shared_tls_context import share_default_verify_context

pytest_plugins = ["tests.support.longest_first", "tests.support.store_replicas"]

share_default_verify_context()  # a poll with httpx.get loaded the CA bundle each time (its docstring)

settings.register_profile("busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("busy-machine")

_frozen_before: list[object] = [None]  # the module last frozen for
HANG_MARGIN_SECONDS = 60.0  # past a phase's timeout: pytest-timeout's own failure comes first
_stderr_copy: list[int] = []  # where the stacks go; fd 2 itself is the capture's file during a test


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    module = getattr(item, "module", None)
    if module is _frozen_before[0]:
        return
    _frozen_before[0] = module
    gc.collect()  # the young objects since the last freeze only: the frozen ones are not scanned
    gc.freeze()


def _own_handlers() -> list[logging.Handler]:
    """The root logger's handlers other than pytest's own per-phase capture ones."""
    return [handler for handler in logging.getLogger().handlers if not type(handler).__module__.startswith("_pytest")]


@pytest.fixture(autouse=True)
def root_logging_left_as_found() -> Iterator[None]:
    before = _own_handlers()
    yield
    left = [handler for handler in _own_handlers() if handler not in before]
    assert not left, f"this test left root logging handlers behind: {left}; restore logging.getLogger().handlers"


def pytest_configure(config: pytest.Config) -> None:
    try:
        stderr = sys.stderr.fileno()
    except (AttributeError, ValueError):  # pytest-xdist's stand-in for sys.stderr has no descriptor
        stderr = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
    _stderr_copy.append(os.dup(stderr))


def _watched(item: pytest.Item) -> Generator[None, object, object]:
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0] if marker and marker.args else item.config.getini("timeout") or 0)
    if timeout <= 0 or not _stderr_copy:
        return (yield)
    faulthandler.dump_traceback_later(timeout + HANG_MARGIN_SECONDS, exit=True, file=_stderr_copy[-1])
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_setup")
def pytest_runtest_setup_watched(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_watched(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_teardown")
def pytest_runtest_teardown_watched(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))

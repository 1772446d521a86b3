"""The test process keeps real-time clients (a carrier's 20 ms frames, a Pipecat client's microphone,
aiortc peers) on a heap that grows over the run to about two million objects (every module's imports,
the Pulumi programs under mocks): a full garbage collection then stops the process for 1-2 s on a
loaded 2-core host (measured with a gc callback over a whole run). A client silent for a second is a
caller gone quiet to the bot: Pipecat's VAD ends the user's turn after one second without audio
(`audio_idle_timeout`), and an echo came back cut short.

So before each module, what the earlier modules left alive is collected once and frozen (`gc.freeze`,
as pre-fork servers do): later collections scan only what is new, the pauses stay short, and garbage
made from then on is still collected.

A test leaves the root logger as it found it: a handler left on a test's captured stream (closed after
the test) turns every later test's log line in that worker into "--- Logging error ---" on stderr.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

_frozen_before: list[object] = [None]  # the module last frozen for


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

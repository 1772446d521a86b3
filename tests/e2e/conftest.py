from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import DispatcherProcess, run_dispatcher

SPEECH = Path(__file__).parents[1] / "fixtures" / "speech16k.wav"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    """The real thing: `python -m dispatcher` in local mode, spawning real `python -m bot` processes.

    Its reserve is off, so each start here is a cold launch (test_warm_session.py has the reserve)."""
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), {"RESERVE_MAX_IDLE": "0"}) as running:
        yield running

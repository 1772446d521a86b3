"""Fixtures the tests of calls placed through Twilio share (a module's own `twilio` fixture overrides it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls


@pytest.fixture
def twilio() -> Iterator[FakeTwilioCalls]:
    """Twilio's Calls API, a strict fake on a real port (tests/fakes/twilio_outbound.py)."""
    with serve(FakeTwilioCalls(create_per_second=50)) as fake:
        yield fake

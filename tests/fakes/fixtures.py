"""pytest fixtures serving the fakes. Import them into a conftest (`from tests.fakes.fixtures import *`)
or register the module as a plugin in the top-level conftest (`pytest_plugins = ["tests.fakes.fixtures"]`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.daily import FakeDaily
from tests.fakes.server import FakeServer


@pytest.fixture
def fake_daily() -> Iterator[FakeDaily]:
    fake = FakeDaily()
    with FakeServer(fake.app()) as server:
        fake.url = f"{server.url}/v1"  # type: ignore[attr-defined]
        yield fake

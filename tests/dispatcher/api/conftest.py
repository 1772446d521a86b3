"""The phone routes' dispatchers (tests/support/phone_dispatcher.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.phone_dispatcher import Phone, phone_dispatcher


@pytest.fixture
async def keyed() -> AsyncIterator[Phone]:
    """A dispatcher with API keys and every carrier's credential: every call must prove itself."""
    async for phone in phone_dispatcher(keyed=True):
        yield phone


@pytest.fixture
async def keyless() -> AsyncIterator[Phone]:
    """A local loopback dispatcher without keys: calls need no proof."""
    async for phone in phone_dispatcher(keyed=False):
        yield phone

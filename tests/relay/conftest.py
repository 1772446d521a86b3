"""Relay tests: coturn in a hub namespace, client and bot in namespaces of their own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coturn import Coturn, coturn_unavailable_reason, run_coturn
from tests.support.netns import TURN_ADDRESS, RelayTopology, relay_topology, unavailable_reason


@pytest.fixture
def topology() -> Iterator[RelayTopology]:
    reason = unavailable_reason() or coturn_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with relay_topology() as created:
        yield created


@pytest.fixture
def turn_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def coturn(topology: RelayTopology, turn_secret: str, tmp_path: Path) -> Iterator[Coturn]:
    with run_coturn(topology.hub, TURN_ADDRESS, turn_secret, tmp_path / "coturn") as server:
        yield server

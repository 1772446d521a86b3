"""Relay tests: coturn in a hub namespace, client and bot in namespaces of their own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coturn import Coturn, coturn_unavailable_reason, run_coturn
from tests.support.netns import TURN_ADDRESS, RelayTopology, relay_topology, unavailable_reason
from tests.support.netns_dispatcher import run_dispatcher_in
from tests.support.netns_session import clean_env
from tests.support.processes import DispatcherProcess

API_KEY = "relay-test-key-0123456789"


# The namespaces, the secret and coturn are shared by a module's tests (each its own session and
# allocations); building them per test cost more than several of the tests themselves.
@pytest.fixture(scope="module")
def topology() -> Iterator[RelayTopology]:
    reason = unavailable_reason() or coturn_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with relay_topology() as created:
        yield created


@pytest.fixture(scope="module")
def turn_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def coturn(topology: RelayTopology, turn_secret: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with run_coturn(topology.hub, TURN_ADDRESS, turn_secret, tmp_path_factory.mktemp("coturn")) as server:
        yield server


@pytest.fixture
def relay_dispatcher(
    topology: RelayTopology, coturn: Coturn, turn_secret: str, tmp_path: Path
) -> Iterator[DispatcherProcess]:
    """`python -m dispatcher` in the hub (key `API_KEY`), handing out TURN credentials with the
    relay policy (the cloud default; local mode would allow direct paths), its bots in the bot
    namespace dialling its channel."""
    env = {
        **clean_env(),
        "DISPATCHER_API_KEYS": API_KEY,
        "TURN_URLS": f"{coturn.url_udp},{coturn.url_tcp}",
        "TURN_SHARED_SECRET": turn_secret,
        "ICE_TRANSPORT_POLICY": "relay",
    }
    with run_dispatcher_in(
        topology.hub, TURN_ADDRESS, bot_namespace=topology.bot, env=env, log_path=tmp_path / "dispatcher.log"
    ) as dispatcher:
        yield dispatcher

"""A trunk call's hand-over to its last SIP edge says the edge placed nothing (`_NothingPlaced`: its record let go,
the call free to go to another edge) only when no try of it may have reached the edge: a retry that lost its
connection after sending (the edge restarting) may have placed the call, however the tries after it ended. The
edge's network is scripted here; the retries (dispatcher/outbound/retry.py) and the judgement are the real ones."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpError
from dispatcher.outbound.retry import Backoff
from dispatcher.phone import trunk_calls
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings
from dispatcher.store.memory import LocalFirstClaims

EDGE = "http://127.0.0.1:9"
SECRET = "edge-control-secret-for-the-tests-0123456789"


def refused() -> HttpError:
    error = HttpError("no connection within the connect timeout (ConnectionTimeoutError)", EDGE)
    error.__cause__ = aiohttp.ConnectionTimeoutError()
    return error


def dropped_after_sending() -> HttpError:
    error = HttpError("the server closed the connection (ServerDisconnectedError)", EDGE, sent=True)
    error.__cause__ = aiohttp.ServerDisconnectedError()
    return error


class ScriptedEdge:
    """The edge's client: each request fails as the script says."""

    def __init__(self, failures: list[HttpError]) -> None:
        self.failures = failures

    async def request(self, *_args: Any, **_kw: Any) -> None:
        raise self.failures.pop(0)


@pytest.mark.parametrize("retries", [[dropped_after_sending(), refused(), refused()],
                                     [refused(), dropped_after_sending(), refused()]])
async def test_a_retry_that_may_have_reached_the_edge_is_never_taken_for_nothing_placed(
        monkeypatch: pytest.MonkeyPatch, retries: list[HttpError]) -> None:
    monkeypatch.setattr(trunk_calls, "BACKOFF", Backoff(attempts=3, base=0.0, cap=0.0, deadline=60.0))
    calls = TrunkCalls(TrunkCallSettings((EDGE,), SECRET), limits=None,  # type: ignore[arg-type]
                       records=LocalFirstClaims(), max_session_seconds=1800, transfer_seconds=3600)
    script = ScriptedEdge([refused(), *retries])
    monkeypatch.setattr(calls.edges, "client", lambda url: script)
    try:
        with pytest.raises(ApiError) as held:
            await calls._answer(EDGE, "POST", "/calls", last=True, json={"session_id": "s"})
    finally:
        await calls.aclose()
    assert script.failures == []  # every try was made
    assert held.value.code == "sip_edge_unavailable" and trunk_calls.MAY_HOLD in held.value.message


async def test_tries_that_all_never_connected_placed_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trunk_calls, "BACKOFF", Backoff(attempts=3, base=0.0, cap=0.0, deadline=60.0))
    calls = TrunkCalls(TrunkCallSettings((EDGE,), SECRET), limits=None,  # type: ignore[arg-type]
                       records=LocalFirstClaims(), max_session_seconds=1800, transfer_seconds=3600)
    monkeypatch.setattr(calls.edges, "client", lambda url: ScriptedEdge([refused() for _ in range(4)]))
    try:
        with pytest.raises(trunk_calls._NothingPlaced):
            await calls._answer(EDGE, "POST", "/calls", last=True, json={"session_id": "s"})
    finally:
        await calls.aclose()

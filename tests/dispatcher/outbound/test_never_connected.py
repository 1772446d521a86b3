"""A call that never connected sent nothing (`never_connected`): told from one sent but unanswered, against real
sockets: a port nothing listens on, one whose queue of connections is full (no connection within the client's
connect bound, for a streamed answer too), and a server that takes the connection but never answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.outbound.http_failure import never_connected
from dispatcher.outbound.retry import Backoff, provider_request
from tests.support import unconnectable
from tests.support.ports import free_port

CONNECT = 0.3
ONCE = Backoff(attempts=2, base=0.001, deadline=5.0)


@pytest.fixture
def full_queue() -> Iterator[int]:
    with unconnectable.full_queue() as port:
        yield port


async def failure(client: HttpClient, *, streamed: bool = False) -> HttpError:
    async with asyncio.timeout(10):  # far past any bound here: a call with no connect bound fails the test
        try:
            if streamed:
                async with client.lines("GET", "/pods", timeout=30.0):
                    pass
            else:
                await client.request("GET", "/pods")
        except HttpError as exc:
            return exc
        finally:
            await client.aclose()
    raise AssertionError("the call was answered")


async def test_a_refused_connection_never_connected() -> None:
    exc = await failure(HttpClient(f"http://127.0.0.1:{free_port()}", timeout=5.0, connect_timeout=CONNECT))
    assert never_connected(exc) and str(exc) == "connection refused: nothing listens there (ClientConnectorError)"


@pytest.mark.parametrize("streamed", [False, True])
async def test_no_connection_within_the_connect_bound_never_connected(full_queue: int, streamed: bool) -> None:
    client = HttpClient(f"http://127.0.0.1:{full_queue}", timeout=30.0, connect_timeout=CONNECT)
    exc = await failure(client, streamed=streamed)
    assert never_connected(exc)
    assert str(exc) == "no connection within the connect timeout (ConnectionTimeoutError)"


async def test_a_request_sent_and_unanswered_may_have_been_served(silent: int) -> None:
    exc = await failure(HttpClient(f"http://127.0.0.1:{silent}", timeout=0.5, connect_timeout=CONNECT))
    assert not never_connected(exc) and str(exc).startswith("no answer within the timeout")


async def test_a_provider_call_given_up_says_whether_anything_was_sent(silent: int) -> None:
    for port, sent in ((free_port(), False), (silent, True)):
        client = HttpClient(f"http://127.0.0.1:{port}", timeout=0.5, connect_timeout=CONNECT)
        try:
            with pytest.raises(MachinesError) as caught:
                await provider_request("k8s", client, "POST", "/pods", error=MachinesError, backoff=ONCE)
        finally:
            await client.aclose()
        assert caught.value.reason == "k8s_unavailable" and caught.value.nothing_sent is not sent

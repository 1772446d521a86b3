"""A call the dispatcher cannot make for want of its own descriptors (EMFILE, for real: tests/support/descriptors.py)
gives up as `dispatcher_exhausted`, nothing sent, a 503 that says why; but a call whose earlier try was sent and
went unanswered may have been served, so its give-up stays the provider's `_unavailable` (its machine is looked
for), whatever stopped the last try. So does a try that went out before its descriptors ran out (a redirect it
then could not follow)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.outbound.retry import Backoff, provider_request
from tests.support.descriptors import out_of_descriptors
from tests.support.ports import free_port

TWICE = Backoff(attempts=2, base=0.001, deadline=5.0)


async def test_a_call_the_dispatcher_cannot_make_says_so_and_sent_nothing(silent: int) -> None:
    client = HttpClient(f"http://127.0.0.1:{silent}", timeout=0.5, connect_timeout=0.3)
    try:
        with out_of_descriptors(), pytest.raises(MachinesError) as caught:
            await provider_request("k8s", client, "POST", "/pods", error=MachinesError, backoff=TWICE)
    finally:
        await client.aclose()
    answer = as_api_error(caught.value)
    assert (caught.value.reason, caught.value.nothing_sent, answer.status) == ("dispatcher_exhausted", True, 503)
    assert "too many open files" in answer.message and "not k8s's" in answer.message, answer.message


async def test_a_call_sent_before_the_descriptors_ran_out_may_have_been_served(silent: int) -> None:
    client = HttpClient(f"http://127.0.0.1:{silent}", timeout=0.5, connect_timeout=0.3)
    with contextlib.ExitStack() as spent:

        async def spend() -> bool:  # before the retry: its new connection cannot be opened
            spent.enter_context(out_of_descriptors())
            return True

        try:
            with pytest.raises(MachinesError) as caught:
                await provider_request("k8s", client, "POST", "/pods", error=MachinesError, backoff=TWICE,
                                       before_retry=spend)
        finally:
            spent.close()
            await client.aclose()
    assert (caught.value.reason, caught.value.nothing_sent) == ("k8s_unavailable", False)
    assert "Too many open files" in caught.value.message, caught.value.message


async def test_a_try_that_went_out_before_the_descriptors_ran_out_may_have_been_served() -> None:
    held: list[asyncio.StreamWriter] = []  # its connection stays open: the redirect is the answer
    elsewhere = free_port()
    with contextlib.ExitStack() as spent:

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")  # the request is here: it may be served, whatever follows
            spent.enter_context(out_of_descriptors())  # the redirect it is answered with cannot be followed
            writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/pods\r\n"
                         b"Content-Length: 0\r\n\r\n" % elsewhere)
            await writer.drain()
            held.append(writer)

        server = await asyncio.start_server(redirect, "127.0.0.1", 0)
        client = HttpClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=2.0,
                            connect_timeout=1.0)
        try:
            with pytest.raises(MachinesError) as caught:
                await provider_request("k8s", client, "POST", "/pods", error=MachinesError,
                                       backoff=Backoff(attempts=1, deadline=5.0))
        finally:
            spent.close()
            await client.aclose()
            for writer in held:
                writer.close()
            server.close()
    assert (caught.value.reason, caught.value.nothing_sent) == ("k8s_unavailable", False), caught.value.message

"""One provider HTTP call (`send`, `provider_request`) against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatcher.machines.base import MachinesError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.ratelimit import Rate, TokenBucket
from dispatcher.outbound.retry import Backoff, provider_request, send
from tests.fakes.server import FakeApi, free_port, serve

FAST = Backoff(attempts=3, base=0.001, deadline=5.0)


class Thing(FakeApi):
    """An API with one resource: enough to count calls and inject failures."""

    def routes(self) -> list[Route]:
        return [Route("/thing", self.thing, methods=["GET"])]

    async def thing(self, request: Request) -> Response:
        return JSONResponse({"thing": 1})


@pytest.fixture
def api() -> Iterator[Thing]:
    with serve(Thing()) as fake:
        yield fake


@pytest.fixture
async def client(api: Thing) -> AsyncIterator[HttpClient]:
    http = HttpClient(api.url, timeout=5.0)
    yield http
    await http.aclose()


async def test_send_answers_the_response_after_retrying_server_failures(api: Thing, client: HttpClient) -> None:
    api.fail(503, times=2)
    response = await send(client, "GET", "/thing", backoff=FAST)
    assert response.status_code == 200 and response.json() == {"thing": 1}
    assert len(api.calls) == 3


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_send_retries_a_throttled_or_failing_server(api: Thing, client: HttpClient, status: int) -> None:
    api.fail(status, times=1)
    assert (await send(client, "GET", "/thing", backoff=FAST)).status_code == 200
    assert len(api.calls) == 2


async def test_send_hands_other_statuses_to_the_caller_without_a_retry(api: Thing, client: HttpClient) -> None:
    api.fail(404, times=1)
    response = await send(client, "GET", "/thing", backoff=FAST)
    assert response.status_code == 404
    assert len(api.calls) == 1


async def test_a_throttled_provider_is_named_with_the_servers_retry_after(api: Thing, client: HttpClient) -> None:
    api.fail(429, times=5, retry_after=7)  # a 7 s wait would pass the 1 s deadline: give up at once
    with pytest.raises(MachinesError) as caught:
        await provider_request(
            "fly", client, "GET", "/thing", error=MachinesError, backoff=Backoff(attempts=3, deadline=1.0))
    assert caught.value.reason == "fly_throttled"
    assert caught.value.retry_after == 7.0
    assert len(api.calls) == 1


async def test_an_unavailable_provider_says_when_to_come_back(api: Thing, client: HttpClient) -> None:
    api.fail(503, times=5)
    with pytest.raises(MachinesError) as caught:
        await provider_request("gce", client, "GET", "/thing?key=secret-in-query", error=MachinesError, backoff=FAST)
    assert caught.value.reason == "gce_unavailable"
    assert str(caught.value) == "gce: GET /thing: HTTP 503"  # what failed, never the query string
    assert caught.value.retry_after == 1.0  # no Retry-After from the server: a second
    assert len(api.calls) == FAST.attempts


async def test_a_provider_that_does_not_answer_is_unavailable() -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}", timeout=5.0)  # nothing listens there
    try:
        with pytest.raises(MachinesError) as caught:
            await provider_request("daily", client, "GET", "/thing", error=MachinesError, backoff=FAST)
    finally:
        await client.aclose()
    assert caught.value.reason == "daily_unavailable"


async def test_provider_request_takes_a_token_from_its_bucket_before_each_call(
    api: Thing, client: HttpClient
) -> None:
    bucket = TokenBucket("fly-create", Rate(per_second=0.01, burst=1, max_wait=0.0))
    first = await provider_request("fly", client, "GET", "/thing", error=MachinesError, backoff=FAST, bucket=bucket)
    assert first.status_code == 200
    with pytest.raises(MachinesError) as caught:
        await provider_request("fly", client, "GET", "/thing", error=MachinesError, backoff=FAST, bucket=bucket)
    assert caught.value.reason == "fly_rate_limited" and caught.value.retry_after is not None
    assert len(api.calls) == 1  # refused before it reached the provider

"""What a pace's home takes for its own rate: a trunk's `cps` as its SIP edge lists it (a stand-in edge
on loopback, read by the real TrunkCalls); none for a trunk or an account this region does not have.
Its own carrier account's rate: tests/dispatcher/regions/test_pace_homes.py, through a real app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dispatcher.phone.own_paces import own_rates
from dispatcher.phone.trunk_calls import TrunkCalls, TrunkCallSettings
from dispatcher.store.local import LocalCoordination
from tests.fakes.server import FakeServer


async def trunks(_request: Request) -> JSONResponse:
    return JSONResponse({"trunks": [{"name": "main", "cps": 10}], "stream_path": True})


async def test_a_trunk_s_own_rate_is_its_edge_s_cps_and_none_where_this_region_has_no_such_pace() -> None:
    with FakeServer(Starlette(routes=[Route("/trunks", trunks)])) as edge:
        here = LocalCoordination()
        calls = TrunkCalls(TrunkCallSettings((edge.url,), "s" * 32), here, here.key_holders,
                           max_session_seconds=1800, transfer_seconds=3600)
        own = own_rates({}, calls)
        try:
            assert [await own(b) for b in ("trunk:main", "trunk:elsewhere", "twilio:AC1")] == [10.0, None, None]
        finally:
            await calls.aclose()

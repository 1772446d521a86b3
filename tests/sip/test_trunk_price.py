"""A trunk's price a minute in the edge's file (one number both ways, or `{inbound, outbound}`, and its
billing increment), the secret it needs to vouch for it, the inbound price on each call's
`POST /start` with that secret, and the outbound one in the control API's list of trunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatcher.usage.trunk_line import MAX_TRUNK_CHARS
from sipedge.config import ConfigError, TrunkPrice, load
from sipedge.control import _price
from sipedge.dispatcher_link import DispatcherLink
from tests.sip.test_edge_parts import config

SECRET = "edge-control-secret-for-the-tests-0123456789"
PRICED = """control_secret_env = "EDGE_SECRET"

[[trunk]]
name = "twilio"
sources = ["127.0.0.1"]
numbers = { "+14155550199" = "" }
termination_uri = "sip:example.pstn.twilio.com"
"""


@pytest.mark.parametrize(("lines", "price"), [
    ("usd_per_minute = 0.0085", TrunkPrice(0.0085, 0.0085, 60)),
    ("usd_per_minute = 1", TrunkPrice(1.0, 1.0, 60)),
    ("usd_per_minute = { inbound = 0.0085, outbound = 0.013 }\nbilling_increment_seconds = 6",
     TrunkPrice(0.0085, 0.013, 6)),
    ("usd_per_minute = { outbound = 0.013 }", TrunkPrice(None, 0.013, 60)),
    ("", None),
])
def test_a_trunks_price_loads_both_ways_or_each_way(tmp_path: Path, lines: str, price: TrunkPrice | None) -> None:
    edge = load(config(tmp_path, f"{PRICED}{lines}\n", EDGE_SECRET=SECRET))
    assert edge.trunks[0].price == price
    assert edge.control_secret == (SECRET if price is not None else None)  # read only when something needs it


def test_a_trunk_name_longer_than_the_dispatcher_takes_is_refused_at_start(tmp_path: Path) -> None:
    assert len(load(config(tmp_path, PRICED.replace("twilio", "t" * MAX_TRUNK_CHARS), EDGE_SECRET=SECRET))
               .trunks[0].name) == MAX_TRUNK_CHARS
    with pytest.raises(ConfigError, match=r"name.*at most 64 characters"):
        load(config(tmp_path, PRICED.replace("twilio", "t" * (MAX_TRUNK_CHARS + 1)), EDGE_SECRET=SECRET))


def test_a_line_names_its_trunk_and_direction_and_a_direction_not_priced_has_none() -> None:
    price = TrunkPrice(None, 0.013, 6)
    assert price.line("twilio", "inbound") is None
    assert price.line("twilio", "outbound") == {"trunk": "twilio", "direction": "outbound", "usd_per_minute": 0.013,
                                                "increment_seconds": 6}


@pytest.mark.parametrize(("text", "said"), [
    (PRICED.replace('control_secret_env = "EDGE_SECRET"', "") + "usd_per_minute = 0.01\n",
     "trunk 'twilio''s usd_per_minute needs control_secret_env"),
    (PRICED + "usd_per_minute = -0.01\n", "usd_per_minute"),
    (PRICED + "usd_per_minute = 12\n", "usd_per_minute"),
    (PRICED + "usd_per_minute = nan\n", "usd_per_minute"),
    (PRICED + "usd_per_minute = { inbound = 0.01, sideways = 1 }\n", "sideways"),
    (PRICED + "usd_per_minute = 0.01\nbilling_increment_seconds = 0\n", "billing_increment_seconds"),
    (PRICED + "usd_per_minute = 0.01\nbilling_increment_seconds = 120\n", "billing_increment_seconds"),
])
def test_a_price_that_cannot_work_stops_the_edge_naming_it(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(config(tmp_path, text, EDGE_SECRET=SECRET))
    assert said in str(refused.value)


class Dispatcher:
    def __init__(self) -> None:
        self.starts: list[tuple[dict[str, Any], str | None]] = []

    async def start(self, request: web.Request) -> web.Response:
        self.starts.append((await request.json(), request.headers.get("X-Voicefleet-Edge-Secret")))
        return web.json_response({"sessionId": "s-1", "token": "t-1", "wsUrl": "ws://127.0.0.1:9/ws"}, status=201)


async def test_a_priced_calls_start_names_its_trunk_and_price_with_the_edges_secret() -> None:
    fake = Dispatcher()
    app = web.Application()
    app.router.add_post("/start", fake.start)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    priced, plain = DispatcherLink(url, SECRET), DispatcherLink(url)
    line = TrunkPrice(0.0085, None, 6).line("twilio", "inbound")
    try:
        await priced.call_token("key", {"call_id": "c-1"}, line=line)
        await priced.call_token("key", {"call_id": "c-2"})
        await plain.call_token("key", {"call_id": "c-3"}, line=line)  # no secret: no price it could vouch for
    finally:
        await priced.close()
        await plain.close()
        await server.close()
    (first, secret), (second, unpriced), (third, none) = fake.starts
    assert first["sip_trunk"] == {"trunk": "twilio", "usd_per_minute": 0.0085, "increment_seconds": 6}
    assert secret == SECRET
    assert "sip_trunk" not in second and unpriced == SECRET  # an unpriced start names its edge all the same
    assert "sip_trunk" not in third and none is None


def test_the_control_api_lists_a_trunks_outbound_price_only(tmp_path: Path) -> None:
    both = load(config(tmp_path, f"{PRICED}usd_per_minute = {{ inbound = 0.0085, outbound = 0.013 }}\n",
                       EDGE_SECRET=SECRET)).trunks[0]
    assert _price(both) == {"usd_per_minute": 0.013, "increment_seconds": 60}
    inbound_only = load(config(tmp_path, f"{PRICED}usd_per_minute = {{ inbound = 0.0085 }}\n",
                               EDGE_SECRET=SECRET)).trunks[0]
    assert _price(inbound_only) == {}

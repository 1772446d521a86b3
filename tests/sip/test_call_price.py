"""A SIP call's minutes in its session's cost, end to end: SIPp calls `python -m sipedge`, whose trunk
has a price a minute, in front of a real local dispatcher that shares its secret; the session's cost
(`GET /sessions/{id}`, and `GET /usage`) has the telephony line, its answered seconds those SIPp saw
between the `200 OK` to its INVITE and the `200 OK` to its BYE: the edge's own count, which it tells
with its credential (the dispatcher's view of the end comes a hop or two later). A client's own start naming a price
is refused by that same dispatcher."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import call_id_of, session_of
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge and a bot process

SECRET = "edge-control-secret-for-the-tests-0123456789"
USD_PER_MINUTE = 0.6
TOLERANCE_SECONDS = 1.0  # the edge's count (its 200 OK to PJSUA's report of the BYE) against SIPp's messages


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, EdgeProcess]]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "SIP_EDGE_SECRET": SECRET}
    with run_dispatcher(tmp_path_factory.mktemp("sip-priced-dispatcher"), env) as dispatcher, \
            run_edge(dispatcher, tmp_path_factory.mktemp("sip-priced-edge"), env=edge_keys(SECRET, "http://127.0.0.1:5080"),
                     settings=KEY_SETTINGS,
                     trunk_settings=f"usd_per_minute = {{ inbound = {USD_PER_MINUTE} }}\n"
                                    "billing_increment_seconds = 1") as edge:
        yield dispatcher, edge


async def cost_once_ended(api: httpx.AsyncClient, session_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The session's cost once its bot reported its end (no longer `estimated`)."""
    answer: dict[str, Any] = {}
    for _ in range(int(timeout * 10)):
        answer = (await api.get(f"/sessions/{session_id}")).json()
        if answer.get("status") in ("ended", "failed") and not answer.get("cost", {}).get("estimated", True):
            return dict(answer["cost"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"session {session_id} did not end with its cost: {answer}")


async def usage_telephony(api: httpx.AsyncClient, expected: float, timeout: float = 30.0) -> float:
    """`GET /usage`'s telephony sum once the session's use is counted (a few seconds after its end)."""
    found = 0.0
    for _ in range(int(timeout * 10)):
        answer = await api.get("/usage")
        assert answer.status_code == 200, answer.text
        found = float(answer.json()["totals"].get("telephony_usd", 0.0))
        if found >= expected - 1e-6:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_a_calls_answered_minutes_are_priced_at_its_trunks_price(
        priced: tuple[DispatcherProcess, EdgeProcess]) -> None:
    dispatcher, edge = priced
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        # A plain call its caller hangs up 5.2 s after the answer (the warm-transfer tests' scenario): long enough
        # that its seconds, within TOLERANCE_SECONDS, are told apart from none.
        call = await asyncio.to_thread(run_sipp, "call_warm_hangs_up", NUMBER, edge.sip_port, edge.workdir)
        assert call.returncode == 0, f"{call.output}\n{call.messages[-3000:]}\n{edge.log()[-3000:]}"
        session_id = session_of(edge, call_id_of(call.messages))
        assert session_id is not None, edge.log()
        cost = await cost_once_ended(api, session_id)
        counted = await usage_telephony(api, cost["telephony_usd"])
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
    # The edge counted the call's answered seconds and told them with its credential: they are what is priced.
    assert [e.get("answered_seconds") for e in events if e["event"] == "sip_ended"] == [cost["telephony"]["seconds"]]
    answered, hung_up = call.all_received_at("SIP/2.0 200 ")[0], call.all_received_at("SIP/2.0 200 ")[-1]
    line = cost["telephony"]
    assert (line["trunk"], line["direction"], line["usd_per_minute"], line["answered"]) == (
        "loopback", "inbound", USD_PER_MINUTE, True), cost
    assert line["seconds"] == pytest.approx(hung_up - answered, abs=TOLERANCE_SECONDS), (line, hung_up - answered)
    billed = math.ceil(round(line["seconds"], 3))  # whole seconds: the trunk's increment is 1
    assert line["billed_minutes"] == pytest.approx(billed / 60, abs=1e-4)
    assert cost["telephony_usd"] == pytest.approx(billed / 60 * USD_PER_MINUTE, abs=1e-6)
    assert cost["total"] == pytest.approx(cost["machine_usd"] + cost["telephony_usd"]
                                          + cost.get("services", {}).get("usd", 0.0), abs=1e-6)
    assert counted == pytest.approx(cost["telephony_usd"], abs=1e-6)


async def test_a_clients_own_start_naming_a_price_is_refused(priced: tuple[DispatcherProcess, EdgeProcess]) -> None:
    dispatcher, _ = priced
    start = {"transport": "exotel", "body": {}, "sip_trunk": {"trunk": "loopback", "usd_per_minute": 0.0}}
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        refused = await api.post("/start", json=start)
        forged = await api.post("/start", json=start, headers={"X-Voicefleet-Edge-Secret": "y" * len(SECRET)})
    for answer in (refused, forged):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "sip_edge_only"

"""Daily's dial-in webhook at a region that cannot start the call's bot warm goes where a start
would spill: three real regional dispatchers (`python -m dispatcher`) on loopback sharing one Daily
account (tests/fakes/daily.py), DAILY_DIALIN_SECRET and a front door's PHONE_PUBLIC_URL. eu has no
warm bot and a cold start past PHONE_MAX_WAIT_SECONDS, us has warm stand-in bots that serve Daily,
ap has no warm bot but callers who may wait for its cold start. The call's SIP room and bot are
us's, the bot's `pinlessCallUpdate` goes to us's own URL (whose key signed its credential), and
Daily's retry of the webhook, at any region, finds the same session; a call ap keeps stays at ap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dispatcher.regions.config import region_tag
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.regions.support import regions, until
from tests.regions.test_spill_over import peer_view
from tests.support.processes import DispatcherProcess

DIALIN_SECRET = "daily-dialin-secret-of-every-region-0123"
WEBHOOK = f"/phone/daily/dialin/{DIALIN_SECRET}"


@dataclass
class Pair:
    urls: dict[str, str]
    eu: DispatcherProcess
    us: DispatcherProcess
    ap: DispatcherProcess
    daily: FakeDaily
    records: Path  # what the bots were handed, by session id


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("dialin-regions")
    records = root / "records"
    records.mkdir()
    with serve(FakeDaily(), "/v1") as daily:
        # One front door's name for both (PHONE_PUBLIC_URL): a bot's update must still reach its own region.
        common = {**daily.env, "TRANSPORTS": "webrtc,daily", "DAILY_DIALIN_SECRET": DIALIN_SECRET,
                  "PHONE_PUBLIC_URL": "https://calls.example.com",
                  "STANDIN_CAPABILITIES": "webrtc,daily", "STANDIN_RECORD_DIR": str(records)}
        eu = {**common, "RESERVE_MAX_IDLE": "0", "RESERVE_COLD_START_SECONDS": "20"}  # room, no warm bot
        us = {**common, "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2"}
        ap = {**eu, "PHONE_MAX_WAIT_SECONDS": "60"}  # no warm bot, and callers who may wait it out
        with regions(root, ("eu", "us", "ap"), {"eu": eu, "us": us, "ap": ap}) as (urls, running):
            yield Pair(urls, running["eu"], running["us"], running["ap"], daily, records)


def us_warm_for_daily(seen_by: DispatcherProcess) -> bool:
    view = peer_view(seen_by, "us")
    capacity = view.get("capacity") or {}
    return bool(view.get("reachable") and capacity.get("room") and capacity.get("warm", {}).get("daily"))


def dialin(region: DispatcherProcess, call_id: str) -> httpx.Response:
    call = {"From": "+14155550100", "To": "+14155550199", "callId": call_id, "callDomain": "dom-1"}
    return httpx.post(f"{region.base_url}{WEBHOOK}", json=call, timeout=30)


def handed(pair: Pair, session_id: str) -> dict:
    """The body the session's bot was handed (the stand-in records it on its assignment)."""
    record = pair.records / f"{session_id}.json"
    until(record.exists, 60)
    return json.loads(json.loads(record.read_text())["body"])


def test_a_dialin_at_a_region_without_a_warm_bot_lands_on_the_peers_warm_bot(pair: Pair) -> None:
    until(lambda: us_warm_for_daily(pair.eu), 60)
    pair.daily.hold_call("call-spilled", "dom-1")
    answer = dialin(pair.eu, "call-spilled")
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["sessionId"]
    assert session_id.startswith(region_tag("us"))  # us holds it, and its id says so
    room = next(r for r in pair.daily.rooms.values() if r["url"] == answer.json()["dailyRoom"])
    assert room["config"]["sip"]["sip_mode"] == "dial-in"
    body = handed(pair, session_id)  # a warm bot's assignment: us's reserve took it at once
    api_url = f"{pair.urls['us']}/phone/daily/{session_id}"
    assert body["daily_api_url"] == api_url and body["dialin_settings"]["call_id"] == "call-spilled"
    # The bot's update, at us's own URL, opens with the credential us signed and reaches Daily.
    update = {"callId": "call-spilled", "callDomain": "dom-1", "sipUri": room["config"]["sip_uri"]["endpoint"]}
    done = httpx.post(f"{api_url}/dialin/pinlessCallUpdate", json=update, timeout=10,
                      headers={"Authorization": f"Bearer {body['daily_api_key']}"})
    assert done.status_code == 200, done.text
    assert pair.daily.connected_calls["call-spilled"] == update["sipUri"]
    # Its timeline says where Daily's webhook arrived and why it went on.
    until(lambda: f"daily dial-in {session_id}: spilled over from region eu (cold_start_over_max_wait)"
          in pair.us.log(), 60)
    # The call is eu's demand (Daily called eu), not us's, which only lent its bot.
    until(lambda: (peer_view(pair.us, "eu").get("capacity") or {}).get("demand_per_minute", 0) > 0, 60)
    assert peer_view(pair.eu, "us")["capacity"]["demand_per_minute"] == 0


def test_dailys_retry_at_either_region_finds_the_same_session_and_never_a_second_bot(pair: Pair) -> None:
    until(lambda: us_warm_for_daily(pair.eu), 60)
    first = dialin(pair.eu, "call-retried")
    assert first.status_code == 201, first.text
    session_id = first.json()["sessionId"]
    rooms = len(pair.daily.rooms)
    for region in (pair.eu, pair.us, pair.eu):
        again = dialin(region, "call-retried")
        assert again.status_code == 200, again.text
        assert again.json()["sessionId"] == session_id
    assert len(pair.daily.rooms) == rooms  # one room
    assert handed(pair, session_id)["dialin_settings"]["call_id"] == "call-retried"
    assert len(bots_for(pair, "call-retried")) == 1  # one bot, in either region


def bots_for(pair: Pair, call_id: str) -> list[Path]:
    """The bots (their records) handed this call."""
    return [path for path in pair.records.glob("*.json")
            if call_id in json.loads(path.read_text()).get("body", "")]


def test_a_call_that_lands_first_at_the_warm_region_stays_there_and_its_retry_at_the_cold_one_follows(
        pair: Pair) -> None:
    until(lambda: us_warm_for_daily(pair.eu), 60)  # us has a warm bot
    home = dialin(pair.us, "call-at-us")
    assert home.status_code == 201, home.text
    session_id = home.json()["sessionId"]
    assert session_id.startswith(region_tag("us"))
    assert handed(pair, session_id)["daily_api_url"] == f"{pair.urls['us']}/phone/daily/{session_id}"
    assert f"daily dial-in {session_id}: spilled" not in pair.us.log()  # not spilled: Daily called us
    rooms = len(pair.daily.rooms)
    retried = dialin(pair.eu, "call-at-us")  # Daily's retry, at the region with no warm bot
    assert retried.status_code == 200 and retried.json()["sessionId"] == session_id, retried.text
    assert len(pair.daily.rooms) == rooms and len(bots_for(pair, "call-at-us")) == 1


def test_a_retry_at_a_region_that_would_keep_the_call_goes_where_the_call_is(pair: Pair) -> None:
    until(lambda: us_warm_for_daily(pair.ap), 60)
    first = dialin(pair.us, "call-then-ap")
    assert first.status_code == 201 and first.json()["sessionId"].startswith(region_tag("us")), first.text
    # ap would start a call here (its callers may wait for a cold start): the call's key says us has it.
    retried = dialin(pair.ap, "call-then-ap")
    assert retried.status_code == 200 and retried.json()["sessionId"] == first.json()["sessionId"], retried.text
    kept = dialin(pair.ap, "call-at-ap")  # the control: a new call at ap stays at ap
    assert kept.status_code == 201 and kept.json()["sessionId"].startswith(region_tag("ap")), kept.text

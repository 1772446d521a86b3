"""A Twilio account's calls per second, held across regions: two real regional dispatchers
(`python -m dispatcher`), each with a redis-server of its own, place calls out through one account of
the strict Twilio fake (tests/fakes/twilio_outbound.py, which keeps each create's time) at 1 call a
second. Calls asked of both regions at once reach Twilio a second apart, as from one region (each
region alone would place its own a second apart, side by side with the other's). With the pace's
home region stopped, the other is refused during the hand-over (429, Retry-After; a call whose ask
found the home gone before the polls did, refused alone, before), then keeps its
share: half a call a second, and each call's timeline says whose turn it took."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx

from dispatcher.regions.pace_homes import HANDOVER_SECONDS, PASS_OVER_FAILURES, pace_home
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.regions.support import reachable, regions, until
from tests.support.redis_server import redis_server
from tests.support.waiting import within

KEY = "vf_pace_regions_key_0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL = {"to": "+14155550100", "from": "+14155550199", "carrier": "twilio"}
MAX_WAIT = 5.0
SLACK = 0.25  # a create's own trip to the fake, under load


def dialing(twilio: FakeTwilioCalls) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
            "TWILIO_CALLS_PER_SECOND": "1", "TWILIO_CALL_MAX_WAIT_SECONDS": str(MAX_WAIT),
            "DISPATCHER_API_KEYS": f"dialer:{KEY}", **calls_allowed("twilio", caller="dialer")}


async def place(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(f"{url}/calls", json=CALL, headers=AUTH)


async def placed(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """A call placed, asked again after each 429's Retry-After (as a client does: a loaded machine may
    slow a region's answer past the pace's bound)."""
    for _ in range(8):
        answer = await place(client, url)
        if answer.status_code != 429:
            return answer
        await asyncio.sleep(float(answer.headers["retry-after"]))
    return answer


async def paced_by(client: httpx.AsyncClient, url: str, answer: httpx.Response) -> list[str]:
    """The call's `paced` events, once one is there: the timeline is written in the background (a record
    never delays a call), so one read just after the 201 may come before the write on a loaded machine."""
    async def events() -> list[str]:
        timeline = (await client.get(f"{url}/sessions/{answer.json()['session_id']}/timeline", headers=AUTH)).json()
        return [str(e.get("by")) for e in timeline["events"] if e["event"] == "paced"]
    return await within(events, 10.0, 0.1) or []


def spaced(created: list[float], interval: float) -> bool:
    """Each create at least `interval` after the one before, on average from the first (less the slack)."""
    return all(at - created[0] >= n * interval - SLACK for n, at in enumerate(sorted(created)))


async def test_calls_in_two_regions_keep_one_pace_and_the_share_survives_the_home(tmp_path: Path) -> None:
    with serve(FakeTwilioCalls(create_per_second=100)) as twilio, ExitStack() as stores:
        extra = {}
        for name in ("eu", "us"):  # a store of each region's own: regions share none
            (tmp_path / name).mkdir()
            extra[name] = {**dialing(twilio), **stores.enter_context(redis_server(tmp_path / name)).env}
        with regions(tmp_path, ("eu", "us"), extra) as (urls, running):
            until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"), 60)
            home = pace_home(urls, f"twilio:{ACCOUNT_SID}")
            other = "us" if home == "eu" else "eu"
            async with httpx.AsyncClient(timeout=30) as client:
                spread = ("eu", "us", "eu", "us")
                answers = await asyncio.gather(*(placed(client, urls[name]) for name in spread))
                assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers if a.status_code != 201]
                assert spaced(twilio.created_at, 1.0), twilio.created_at
                for name, answer in zip(spread, answers, strict=True):  # whose turn each took: said on its timeline
                    assert len(await paced_by(client, urls[name], answer)) == 1

                running[home].process.kill()
                running[home].process.wait()
                # Refused: the calls whose asks found the home gone (before the polls did), then through the
                # hand-over, while the home's last turns may still be due.
                refused = await place(client, urls[other])
                for _ in range(PASS_OVER_FAILURES - 1):
                    if "did not answer this call's ask" in refused.text:
                        refused = await place(client, urls[other])
                assert refused.status_code == 429 and "does not answer" in refused.text, refused.text
                assert float(refused.headers["retry-after"]) <= HANDOVER_SECONDS + MAX_WAIT + 1
                before = len(twilio.created_at)
                alone = await asyncio.gather(*(placed(client, urls[other]) for _ in range(3)))
                assert [a.status_code for a in alone] == [201] * 3, [a.text for a in alone if a.status_code != 201]
                assert spaced(twilio.created_at[before:], 2.0), twilio.created_at[before:]  # its share: 1 ÷ 2
                by = await paced_by(client, urls[other], alone[0])
                assert len(by) == 1 and f"home {home} does not answer" in by[0], by

"""A campaign worked by two real dispatchers (`python -m dispatcher`) on one redis-server, through the strict
Twilio fake (tests/fakes/twilio_outbound.py, which keeps every create's time): 36 rows at 3 calls a second,
6 at once, the account's own pace 4. The test plays each far end (no answer, a moment after the create). One
replica is killed (SIGKILL) while it holds rows: their leases run out (CAMPAIGN_LEASE_SECONDS) and the other
replica follows their calls. Every number is called exactly once, no two creates closer than the pace allows,
and the campaign finishes with every row's outcome."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.replicas.conftest import start_fleet
from tests.support.far_end import ToReplica, closest_to_pace, unanswered_after
from tests.support.redis_server import RedisServer

KEY = "vf_campaign_replicas_key_0123456789ab"
AUTH = {"Authorization": f"Bearer {KEY}"}
FROM = "+14155550199"
ROWS = [f"+1415555{n:04d}" for n in range(36)]
PACE = 3.0
# A create's own trip to the fake varies with the machine's load (a replica's loop held ~0.5 s beside a
# hog is seen), and a late create shortens the next gap by as much; a pace not held falls behind by a
# growing sum (at the account's 4 a second instead of 3, 36 creates run 2.9 s short), so 1 s of slack
# tolerates the one and still catches the other.
SLACK = 1.0
RING_SECONDS = 0.8  # how long the far end lets each call ring before it is `no-answer`
WAIT = 180.0  # bounds every wait: generous, for a loaded machine


async def test_a_campaign_across_two_replicas_keeps_its_pace_and_loses_no_row_when_one_is_killed(
        tmp_path: Path, store: RedisServer) -> None:
    with serve(FakeTwilioCalls(create_per_second=100)) as twilio:
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
               "PHONE_PUBLIC_URL": "https://calls.example.com", "TWILIO_CALLS_PER_SECOND": "4",
               "TWILIO_CALL_MAX_WAIT_SECONDS": "30", "CAMPAIGN_LEASE_SECONDS": "3",
               "DISPATCHER_API_KEYS": f"dialer:{KEY}", "BOT_CHANNEL_TOKEN": "campaign-replicas-channel-token-0123",
               **calls_allowed("twilio", (FROM,), caller="dialer")}
        with start_fleet(tmp_path, store, 2, **env) as fleet:
            survivor, doomed = fleet.replicas
            twilio.deliver = lambda: httpx.AsyncClient(transport=ToReplica(survivor.base_url), timeout=30)
            playing = asyncio.create_task(unanswered_after(twilio, RING_SECONDS))
            async with httpx.AsyncClient(base_url=survivor.base_url, headers=AUTH, timeout=30) as api:
                created = await api.post("/campaigns", json={
                    "rows": [{"to": n} for n in ROWS], "from": FROM, "carrier": "twilio", "concurrency": 6,
                    "pace": PACE})
                assert created.status_code == 201, created.text
                campaign_id = created.json()["id"]
                holders = store.admin().hgetall(f"{{voicefleet}}:campaign:{campaign_id}:holders")
                deadline = time.monotonic() + WAIT
                while not (len(twilio.placed) >= 8 and any(h.startswith("r-1:") for h in holders.values())):
                    assert time.monotonic() < deadline, f"r-1 never held a row\n{fleet.logs()}"
                    await asyncio.sleep(0.02)
                    holders = store.admin().hgetall(f"{{voicefleet}}:campaign:{campaign_id}:holders")
                doomed.process.kill()  # SIGKILL, while it holds rows
                doomed.process.wait()
                held = [row for row, holder in holders.items() if holder.startswith("r-1:")]
                while (shown := (await api.get(f"/campaigns/{campaign_id}")).json())["status"] != "finished":
                    assert time.monotonic() < deadline, f"{shown}\n{fleet.logs()}"
                    await asyncio.sleep(0.2)
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
        called = Counter(call.one("To") for call in twilio.placed)
        assert called == Counter(ROWS), {n: c for n, c in called.items() if c != 1}  # each row once, none lost
        assert closest_to_pace(twilio.created_at, PACE) >= -SLACK, sorted(twilio.created_at)  # never above the pace
        assert held, "the killed replica held no row"
        assert shown["outcomes"] == {"no_answer": len(ROWS)} and shown["placed"] == len(ROWS), shown
        assert (shown["in_progress"], shown["pending"], shown["retrying"]) == (0, 0, 0), shown


async def test_an_admin_at_one_replica_lists_and_stops_a_campaign_a_client_key_made_at_the_other(
        tmp_path: Path, store: RedisServer) -> None:
    """Every key's index is the store's: the campaign opened at one replica is listed, with its key, by an admin
    at the other, stopped there, and stopped for its key at the first."""
    admin = "vf_campaign_replicas_admin_0123456789"
    with serve(FakeTwilioCalls(create_per_second=100)) as twilio:
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
               "PHONE_PUBLIC_URL": "https://calls.example.com", "TWILIO_CALLS_PER_SECOND": "4",
               "DISPATCHER_API_KEYS": f"dialer:{KEY}", "DISPATCHER_ADMIN_KEYS": admin,
               "BOT_CHANNEL_TOKEN": "campaign-replicas-channel-token-0123",
               **calls_allowed("twilio", (FROM,), caller="dialer")}
        with start_fleet(tmp_path, store, 2, **env) as fleet:
            first, second = fleet.replicas
            twilio.deliver = lambda: httpx.AsyncClient(transport=ToReplica(first.base_url), timeout=30)
            async with httpx.AsyncClient(base_url=first.base_url, headers=AUTH, timeout=30) as client, \
                    httpx.AsyncClient(base_url=second.base_url, headers={"Authorization": f"Bearer {admin}"},
                                      timeout=30) as admin_api:
                created = await client.post("/campaigns", json={"rows": [{"to": n} for n in ROWS[:2]], "from": FROM,
                                                                "carrier": "twilio"})
                assert created.status_code == 201, created.text
                campaign_id = created.json()["id"]
                listed = (await admin_api.get("/campaigns")).json()["campaigns"]
                assert [(c["id"], c["key"]) for c in listed] == [(campaign_id, "dialer")], listed
                stopped = await admin_api.post(f"/campaigns/{campaign_id}/stop")
                assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
                shown = (await client.get(f"/campaigns/{campaign_id}")).json()
                assert shown["status"] == "stopped", shown

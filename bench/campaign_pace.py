"""A campaign's pace across replicas: `--numbers` rows at `--pace` calls a second, `--concurrency` at once,
worked by two real dispatchers (`python -m dispatcher`) on one redis-server, through the strict Twilio fake
(tests/fakes/twilio_outbound.py, which keeps every create's time). Each call rings `--ring` seconds, then is
unanswered (tests/support/far_end.py). With `--kill`, the second replica is killed (SIGKILL) a third of the
way through, while it holds rows.

    uv run --all-groups python -m bench.campaign_pace [--numbers 200] [--pace 2] [--concurrency 20] [--kill]

Prints the campaign's time against the pace's (`numbers / pace`), the creates in the busiest second, the
closest any two creates came to the pace (negative: faster), numbers called other than once, and each
replica's share of the calls (from their callbacks' session ids, by the store's row holders); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.replicas.conftest import start_fleet
from tests.support.far_end import ToReplica, closest_to_pace, unanswered_after
from tests.support.redis_server import redis_server

KEY = "vf_campaign_bench_key_0123456789abcdef"
FROM = "+14155550199"


async def run(numbers: int, pace: float, concurrency: int, ring: float, kill: bool) -> dict[str, Any]:
    rows = [f"+1415{n:07d}" for n in range(numbers)]
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as store, \
            serve(FakeTwilioCalls(create_per_second=100)) as twilio:
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
               "PHONE_PUBLIC_URL": "https://calls.example.com", "TWILIO_CALLS_PER_SECOND": str(pace),
               "TWILIO_CALL_MAX_WAIT_SECONDS": "30", "CAMPAIGN_LEASE_SECONDS": "5",
               "DISPATCHER_API_KEYS": f"bench:{KEY}", "BOT_CHANNEL_TOKEN": "campaign-bench-channel-token-0123",
               **calls_allowed("twilio", (FROM,), caller="bench")}
        with start_fleet(Path(folder), store, 2, **env) as fleet:
            first, second = fleet.replicas
            twilio.deliver = lambda: httpx.AsyncClient(transport=ToReplica(first.base_url), timeout=30)
            playing = asyncio.create_task(unanswered_after(twilio, ring))
            async with httpx.AsyncClient(base_url=first.base_url, timeout=30,
                                         headers={"Authorization": f"Bearer {KEY}"}) as api:
                began = time.monotonic()
                made = await api.post("/campaigns", json={
                    "rows": [{"to": n} for n in rows], "from": FROM, "carrier": "twilio", "concurrency": concurrency,
                    "pace": pace})
                made.raise_for_status()
                campaign_id = made.json()["id"]
                holders: Counter[str] = Counter()
                killed = not kill
                while (shown := (await api.get(f"/campaigns/{campaign_id}")).json())["status"] != "finished":
                    held = store.admin().hgetall(f"{{voicefleet}}:campaign:{campaign_id}:holders")
                    holders.update(h.split(":")[0] for h in held.values())
                    if not killed and len(twilio.placed) >= numbers // 3 and any(
                            h.startswith("r-1:") for h in held.values()):
                        second.process.kill()
                        second.process.wait()
                        killed = True
                    await asyncio.sleep(0.25)
                took = time.monotonic() - began
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
        created = sorted(twilio.created_at)
        busiest = max((sum(1 for t in created if at <= t < at + 1.0) for at in created), default=0)
        called = Counter(call.one("To") for call in twilio.placed)
        return {"numbers": numbers, "pace": pace, "concurrency": concurrency, "ring_seconds": ring, "killed": kill,
                "seconds": round(took, 2), "pace_seconds": round(numbers / pace, 2),
                "creates": len(created), "busiest_second": busiest,
                "closest_to_pace_seconds": round(closest_to_pace(created, pace), 3),
                "not_called_once": sum(1 for n in rows if called[n] != 1),
                "outcomes": shown["outcomes"], "held_by_replica_samples": dict(holders),
                "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--pace", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--ring", type=float, default=3.0, help="seconds each call rings before no-answer")
    parser.add_argument("--kill", action="store_true", help="kill the second replica a third of the way through")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.numbers, args.pace, args.concurrency, args.ring, args.kill)), indent=2))


if __name__ == "__main__":
    main()

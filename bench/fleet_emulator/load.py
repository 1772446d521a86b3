"""The load generator, in a process of its own: the schedule's starts, at the replicas in turn.

Each start is `POST /start` with the session's length as the bot's `hold_seconds`, sent at its
offset from the run's start (a late loop is reported, not hidden: `lag` is how far behind the
schedule the generator sent its slowest start). Records one JSON line per start: when it was sent
(this machine's wall clock), its HTTP status, session id and error code.

    python -m bench.fleet_emulator.load --schedule F --out F --replica URL [--replica URL …] --key K [--max-wait S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REQUEST_TIMEOUT = 60.0


async def start(client: httpx.AsyncClient, url: str, key: str, hold: float, out: Any,
                max_wait: float | None = None) -> None:
    """One start. With `max_wait`, the caller asks for a bot within that many seconds (with regions:
    any region's warm bot); refused `cold_start_too_slow` (none warm anywhere), it starts again at
    once without it, a cold start at home, its time counted from the first request."""
    sent = time.time()
    record: dict[str, Any] = {"sent": sent, "replica": url}
    request: dict[str, Any] = {"body": {"hold_seconds": round(hold, 1)}}
    if max_wait is not None:
        request["maxWaitSeconds"] = max_wait
    try:
        while True:
            response = await client.post(f"{url}/start", json=request, headers={"Authorization": f"Bearer {key}"})
            payload = response.json()
            code = (payload.get("error") or {}).get("code") if response.status_code >= 400 else None
            if code != "cold_start_too_slow" or "maxWaitSeconds" not in request:
                break
            del request["maxWaitSeconds"]
            record["cold_after_refusal"] = True
            record["refused_after"] = time.time() - sent  # when it was asked again (the simulator's too)
        record["status"] = response.status_code
        record["session_id"] = payload.get("session_id")
        record["region"] = payload.get("region")  # with regions: where it started (spilled or not)
        if code is not None:
            record["error"] = code
    except (httpx.HTTPError, ValueError) as exc:
        record["status"], record["error"] = 0, type(exc).__name__
    record["answered"] = time.time() - sent
    out.write(json.dumps(record) + "\n")


async def run(schedule: list[tuple[float, float]], replicas: list[str], key: str, out_path: Path,
              max_wait: float | None = None) -> float:
    lag = 0.0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    with out_path.open("w", buffering=1) as out:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as client:
            began = time.monotonic()
            tasks = []
            for n, (offset, hold) in enumerate(schedule):
                wait = began + offset - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                lag = max(lag, -wait)
                tasks.append(asyncio.create_task(start(client, replicas[n % len(replicas)], key, hold, out,
                                                       max_wait)))
            await asyncio.gather(*tasks)
    return lag


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--schedule", type=Path, required=True, help="JSON: [[offset seconds, hold seconds], …]")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--replica", action="append", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--max-wait", type=float,
                   help="the starts' maxWaitSeconds (with regions: spill past it; refused, start cold at home)")
    args = p.parse_args(argv)
    schedule = [(float(a), float(b)) for a, b in json.loads(args.schedule.read_text())]
    lag = asyncio.run(run(schedule, args.replica, args.key, args.out, args.max_wait))
    print(json.dumps({"starts": len(schedule), "lag": round(lag, 3)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

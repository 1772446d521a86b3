"""Lifecycle webhooks across real replicas: at least once, each event under one id wherever and
however often it is sent. Three `python -m dispatcher` processes on a real redis-server, a
receiver in a process of its own verifying every delivery with the Standard Webhooks library.

The receiver is down while sessions start and end at random replicas (their events wait in the
replicas' retries), one replica is SIGKILLed with its events undelivered, then the receiver comes
up: every session's `session.started`, `session.ready` and `session.ended` still arrive, each
verified, each under `msg_<session id>_<type>` on every delivery of it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.replicas.conftest import Fleet, get, post, start_fleet
from tests.support.ports import free_port
from tests.support.processes import terminate
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # three real dispatchers, their bots and a redis-server

SECRET = "whsec_" + base64.b64encode(b"replicas-webhook-secret-32-bytes").decode()
TYPES = {"session.started", "session.ready", "session.ended"}
SESSIONS = 6
# The replicas' retries run 1, 2, 4, 8, 16 and 32 s apart: a receiver back within a minute gets them.
DELIVERY_TIMEOUT = 90.0
OUTBOX = "{voicefleet}:webhooks:outbox"  # dispatcher/sessions/webhook_outbox.py, under the store's prefix


def deliveries(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def waiting(store: RedisServer) -> int:
    admin = store.admin()
    try:
        return int(admin.hlen(OUTBOX))
    finally:
        admin.close()


def ended_everywhere(fleet: Fleet, sessions: list[str]) -> bool:
    """Every session's timeline (in the store, read at any replica) has its end."""
    for session_id in sessions:
        events = get(fleet.any(), f"/sessions/{session_id}/timeline").json().get("events", [])
        if "ended" not in {e["event"] for e in events}:
            return False
    return True


def test_every_event_arrives_once_per_id_through_a_receiver_outage_and_a_killed_replica(
    tmp_path: Path, store: RedisServer
) -> None:
    port = free_port()
    out = tmp_path / "received.jsonl"
    hooks = {"WEBHOOK_URL": f"http://127.0.0.1:{port}/hooks", "WEBHOOK_SECRET": SECRET}
    # Bots that come up, report ready, then a fatal error and their end: a whole lifecycle each.
    with start_fleet(tmp_path, store, 3, STANDIN_MODE="pipeline-error", RESERVE_MIN_IDLE="0",
                     RESERVE_MAX_IDLE="0", **hooks) as fleet:
        sessions = []
        for n in range(SESSIONS):  # the receiver is down: nothing is delivered yet
            answer = post(fleet.replicas[n % 3].base_url, "/start", json={"body": {"n": n}})
            assert answer.status_code == 201, answer.text
            sessions.append(answer.json()["session_id"])
        wait_until(lambda: ended_everywhere(fleet, sessions), "every session's end in its timeline", timeout=60,
                   detail=fleet.logs)
        # Each event is in the outbox (written beside its timeline entry, in the background): from here
        # on, no replica's death can lose one.
        wait_until(lambda: waiting(store) == len(TYPES) * SESSIONS, "every event in the store's outbox", timeout=30,
                   detail=fleet.logs)
        killed = fleet.replicas[0]
        killed.process.kill()  # its events are in its retries, undelivered
        killed.process.wait(timeout=10)
        receiver = subprocess.Popen([sys.executable, "-m", "tests.replicas.webhook_receiver", str(port), str(out)],
                                    env={**os.environ, "WEBHOOK_SECRET": SECRET})
        try:
            def all_arrived() -> bool:
                seen = {(d["data"]["session_id"], d["type"]) for d in deliveries(out) if "invalid" not in d}
                return all((s, t) in seen for s in sessions for t in TYPES)

            wait_until(all_arrived, "every session's lifecycle at the receiver", timeout=DELIVERY_TIMEOUT,
                       detail=lambda: f"{deliveries(out)}\n{fleet.logs()}")
        finally:
            terminate(receiver)
    received = deliveries(out)
    assert not [d for d in received if "invalid" in d]  # every delivery verified
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for delivery in received:
        ids[(delivery["data"]["session_id"], delivery["type"])].add(delivery["id"])
    for session_id in sessions:
        for kind in TYPES:
            # One id per event, on every delivery of it, whichever replica sent it: a receiver drops repeats.
            assert ids[(session_id, kind)] == {f"msg_{session_id}_{kind}"}, ids[(session_id, kind)]

"""A warm-claimed session on Fly costs its machine-seconds at Fly's price in the table
(dispatcher/reserve/prices.py: shared-cpu-4x with 1 GB, the default guest, $8.41 a month), its bot's idle time before
the claim included; the same cost is in `GET /sessions/{id}`, its ended webhook and `/metrics`.

`python -m dispatcher` against the fake Fly API, which runs a real bot process per machine
(tests/replicas/fly_bots.py); the webhook receiver is a plain HTTP server of the test process.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from botchannel.contract import CHANNEL_PATH
from dispatcher.machines.fly.frozen import DEFAULT_RUNNING_DOLLARS
from dispatcher.reserve.prices import HOURS_PER_MONTH
from tests.fakes.fly import FakeFly
from tests.replicas.fly_bots import fly_bots
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN, METRICS_AUTH
from tests.support.threaded_http import serving
from tests.support.waiting import wait_until

KEY = "session-cost-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = "whsec_" + base64.b64encode(b"f" * 32).decode()
DEPLOYMENT = {"DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN, "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc",
              "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SHARED_SECRET": "t" * 32,
              "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
              "RESERVE_MIN_HOT": "1", "FLY_FROZEN_FORM": "off", "WEBHOOK_SECRET": SECRET}


class Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        event = Webhook(SECRET).verify(body, dict(self.headers.items()))  # raises on a bad signature
        with self.lock:
            self.received.append(event)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def metric(dispatcher: DispatcherProcess, series: str) -> float:
    text = httpx.get(f"{dispatcher.base_url}/metrics", headers=METRICS_AUTH, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series))


def cost_of(dispatcher: DispatcherProcess, session_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["cost"])


def test_a_warm_claimed_fly_session_costs_its_seconds_and_its_idle_share_at_flys_price(
        tmp_path: Path, fake_fly: FakeFly) -> None:
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000  # /metrics lists; Fly's list limit is not tested here
    port = free_port()
    channel_url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    (tmp_path / "bots").mkdir()
    Hooks.received = []
    began = time.time()  # before the dispatcher, so before any bot's idle hello
    with serving(Hooks) as receiver, \
            fly_bots(fake_fly, {"BOT_TRANSPORT": "webrtc", "BOT_CHANNEL_URL": channel_url}, tmp_path / "bots"), \
            run_dispatcher(tmp_path, {"MACHINES": "fly", **fake_fly.env, **DEPLOYMENT, "BOT_CHANNEL_URL": channel_url,
                                      "BOT_IDENTITY_AUDIENCE": channel_url, "FLY_LIST_RATE": "100",
                                      "FLY_LIST_BURST": "100", "WEBHOOK_URL": f"{receiver}/hooks"},
                           port=port) as dispatcher:
        wait_until(lambda: metric(dispatcher, 'voicefleet_reserve_bots{provider="fly",state="idle"}') == 1,
                   "the idle bot on the channel", detail=lambda: dispatcher.log()[-4000:])
        start = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=AUTH, timeout=60)
        claimed_by = time.time()
        assert start.status_code == 201, f"{start.text}\n{dispatcher.log()[-4000:]}"
        assert metric(dispatcher, 'voicefleet_reserve_claims_total{outcome="warm_hit",provider="fly",') == 1
        session_id = start.json()["sessionId"]

        live = cost_of(dispatcher, session_id)
        per_hour = DEFAULT_RUNNING_DOLLARS / HOURS_PER_MONTH  # the table's Fly price
        assert (live["provider"], live["size"], live["estimated"]) == ("fly", "shared-cpu-4x, 1024 MB", True)
        assert live["price_per_hour"] == pytest.approx(per_hour, abs=1e-6)
        # Idle from its hello, which came after the dispatcher began, until its claim.
        assert 0 < live["idle_seconds"] <= claimed_by - began
        assert live["idle_usd"] == pytest.approx(live["idle_seconds"] * per_hour / 3600, abs=1e-6)

        assert httpx.delete(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=30).status_code \
            in (202, 204)
        ended = wait_until(lambda: next((e for e in Hooks.received if e["type"] == "session.ended"), None),
                           "the session's ended webhook", detail=lambda: dispatcher.log()[-4000:])
        cost = cost_of(dispatcher, session_id)
        release = httpx.get(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=30).json()["release"]
        series = f'{{provider="fly",release="{release}"}}'
        wait_until(lambda: metric(dispatcher, "voicefleet_session_cost_dollars_total" + series) > 0,
                   "the session's cost in /metrics")
        dollars = metric(dispatcher, "voicefleet_session_cost_dollars_total" + series)
        idle = metric(dispatcher, 'voicefleet_session_machine_seconds_total{part="idle",provider="fly"')
        used = metric(dispatcher, 'voicefleet_session_machine_seconds_total{part="session",provider="fly"')
    assert cost["estimated"] is False  # its bot reported its end
    assert cost["idle_seconds"] == live["idle_seconds"]  # measured once, at the claim
    assert cost["session_seconds"] > 0
    assert cost["total"] == pytest.approx(cost["machine_seconds"] * per_hour / 3600, abs=1e-6)
    assert cost["total"] == pytest.approx(cost["session_usd"] + cost["idle_usd"], abs=2e-6)
    assert ended["data"]["cost"] == cost
    assert dollars == pytest.approx(cost["total"], abs=1e-6)
    assert (idle, used) == (pytest.approx(cost["idle_seconds"], abs=1e-3),
                            pytest.approx(cost["session_seconds"], abs=1e-3))
    assert json.dumps(cost)  # plain JSON, as a receiver reads it

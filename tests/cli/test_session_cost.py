"""`voicefleet session ID` shows a session's `cost` when its answer carries one (a dispatcher that
prices sessions adds `"cost": {...}` to `GET /sessions/{id}`), and a session its provider forgot
with its timeline: against a stand-in holding to the dispatcher's shapes (docs/http-api.md), the
key checked as the dispatcher checks it (401 `unauthorized` otherwise)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from tests.support.threaded_http import serving
from voicefleet.main import voicefleet

KEY = "vf-client-cost-7f3a9e1c05"
PRICED, FORGOTTEN, SERVED, RELAYED = "a" * 24, "b" * 24, "d" * 24, "e" * 24
COST = {"currency": "USD", "total": 0.000482, "session_usd": 0.000423, "idle_usd": 0.00006, "machine_seconds": 219.3,
        "session_seconds": 192.1, "idle_seconds": 27.2, "price_per_hour": 0.007918, "provider": "fly",
        "size": "shared-cpu-1x, 1024 MB", "price_source": "FLY_RUNNING_DOLLARS_PER_MONTH", "estimated": False,
        "not_counted": ["Daily room minutes"]}
SERVICES = {"reported": True, "usd": 0.000387, "not_priced": ["stt nova-3"], "usage": [
    {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 2700, "usd": 0.000387,
     "price_source": "https://developers.openai.com/api/docs/pricing"},
    {"kind": "stt", "processor": "DeepgramSTTService#0", "model": "nova-3", "audio_seconds": 93.5,
     "priced": "not priced", "why": "no price for stt model nova-3 in the table (USAGE_PRICES adds one)"}]}
RELAY = {"relayed": True, "local_candidate": "relay", "remote_candidate": "prflx", "bytes_sent": 120000,
         "bytes_received": 100000, "packets_sent": 500, "packets_received": 450, "usd": 1.2e-05,
         "priced_bytes": 136000, "usd_per_gb": 0.09, "price_source": "https://aws.amazon.com/ec2/pricing/on-demand/",
         "both_ways": False}
EVENTS = [{"event": "requested", "at": 1_795_000_000.0, "replica": "r-1", "trace_id": "c" * 32},
          {"event": "ended", "at": 1_795_000_090.5, "replica": "r-1", "reason": "left", "exit_code": 0}]


class Dispatcher(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._answer(401, {"error": {"code": "unauthorized", "message": "invalid API key"}})
        answers = {
            f"/sessions/{PRICED}": (200, {"session_id": PRICED, "status": "ended", "trace_id": "c" * 32,
                                          "cost": COST}),
            f"/sessions/{SERVED}": (200, {"session_id": SERVED, "status": "ended", "trace_id": "c" * 32,
                                          "cost": {**COST, "total": 0.000869, "services": SERVICES}}),
            f"/sessions/{RELAYED}": (200, {"session_id": RELAYED, "status": "ended", "trace_id": "c" * 32,
                                           "cost": {**COST, "relay_usd": 1.2e-05, "relay": RELAY}}),
            f"/sessions/{RELAYED}/timeline": (200, {"session_id": RELAYED, "trace_id": "c" * 32, "events": EVENTS}),
            f"/sessions/{SERVED}/timeline": (200, {"session_id": SERVED, "trace_id": "c" * 32, "events": EVENTS}),
            f"/sessions/{PRICED}/timeline": (200, {"session_id": PRICED, "trace_id": "c" * 32, "events": EVENTS}),
            f"/sessions/{FORGOTTEN}/timeline": (200, {"session_id": FORGOTTEN, "trace_id": "c" * 32,
                                                      "events": EVENTS}),
        }
        status, body = answers.get(self.path, (404, {"error": {"code": "not_found",
                                                               "message": f"no session {self.path.split('/')[2]}"}}))
        self._answer(status, body)

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    with serving(Dispatcher) as address:
        yield address


def show(url: str, session_id: str) -> list[str]:
    result = CliRunner().invoke(voicefleet, ["session", session_id], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": url, "VOICEFLEET_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_a_sessions_cost_is_shown_when_its_answer_has_one(url: str) -> None:
    lines = show(url, PRICED)
    assert "COST     0.000482 USD (219.3 machine-seconds at 0.007918/hour, fly shared-cpu-1x, 1024 MB)" in lines
    assert lines[lines.index("") + 1].split() == ["WHEN", "EVENT", "REPLICA", "DETAIL"]
    assert lines[-1].split()[2:] == ["ended", "r-1", "reason=left", "exit_code=0"]


def test_a_sessions_services_are_shown_each_priced_or_not(url: str) -> None:
    lines = show(url, SERVED)
    assert "COST      0.000869 USD (219.3 machine-seconds at 0.007918/hour, fly shared-cpu-1x, 1024 MB)" in lines
    assert "SERVICES  0.000387 USD: llm gpt-4o-mini 0.000387, stt nova-3 not priced" in lines


def test_a_sessions_turn_relay_is_shown_priced_or_why_not(url: str) -> None:
    assert ("RELAY    0.000012 USD: relayed (relay ↔ prflx), 120000 bytes sent, 100000 received, at 0.09/GB"
            in show(url, RELAYED))
    assert not any(line.startswith("RELAY") for line in show(url, PRICED))  # an answer that says nothing of it


def test_a_session_its_provider_forgot_shows_as_gone_with_its_timeline(url: str) -> None:
    lines = show(url, FORGOTTEN)
    assert lines[1] == "STATUS   gone (its provider no longer knows it)" and "TRACE    " + "c" * 32 in lines
    assert not any(line.startswith("COST") for line in lines)

"""`voicefleet loadtest` without `--allow-remote` sends nothing off `--url`'s host and starts nothing
on a dispatcher whose bots are not on this machine; and a run ends within the bound it states. The
dispatcher is a stand-in whose answers the test scripts (a dispatcher that sends a call's stream
elsewhere); the "other host" is a listener on 127.0.0.2 that takes connections and never answers."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support.threaded_http import serving
from voicefleet.loadtest import phone_line, run
from voicefleet.loadtest.audio import SPEECH_WAV, read_wav
from voicefleet.loadtest.carrier import carrier_check
from voicefleet.loadtest.plan import Plan
from voicefleet.loadtest.progress import Progress
from voicefleet.loadtest.rail import elsewhere, not_local
from voicefleet.loadtest.run import LoadTest
from voicefleet.loadtest.session import Call
from voicefleet.main import voicefleet

BASE = "http://127.0.0.1:7860"


@pytest.mark.parametrize("answer", [
    {"offer_url": "/sessions/s1/api/offer"}, {"wsUrl": "ws://127.0.0.1:7860/ws/twilio", "token": "t"},
    {"wsUrl": "wss://127.0.0.1/ws/twilio"}, {"offer_url": "/x", "room_url": None},
])  # fmt: skip
def test_session_urls_on_the_host_of_url_pass(answer: dict[str, object]) -> None:
    assert elsewhere(BASE, answer) is None


def test_ice_servers_on_the_host_of_url_pass() -> None:
    ice = {"iceServers": [{"urls": "stun:127.0.0.1:3478"}, {"urls": ["turn:127.0.0.1:3478?transport=udp"]}]}
    assert elsewhere(BASE, {"offer_url": "/x", "iceConfig": ice}) is None


@pytest.mark.parametrize("urls", [
    "stun:stun.l.google.com:19302", ["turn:127.0.0.1:3478", "turns:turn.example.com:443?transport=tcp"],
    "turn:127.0.0.1@turn.example.com", "turn:[2001:db8::1]:3478",
])  # fmt: skip
def test_an_ice_server_on_another_host_is_refused_naming_the_flag(urls: object) -> None:
    """A local dispatcher's ICE_SERVERS (a paid TURN service, set for a browser elsewhere): each
    session's media would be relayed through it."""
    ice = {"iceServers": [{"urls": urls, "username": "u", "credential": "c"}], "iceTransportPolicy": "relay"}
    why = elsewhere(BASE, {"offer_url": "/x", "iceConfig": ice})
    assert why is not None and "--allow-remote" in why and "ICE" in why


@pytest.mark.parametrize("answer", [
    {"wsUrl": "ws://127.0.0.2:7860/ws/twilio"},  # loopback, and still another host than --url's
    {"wsUrl": "wss://abc.ngrok.app/ws/twilio"}, {"offer_url": "@127.0.0.2/api/offer"},
    {"offer_url": ".evil.example/api/offer"}, {"offer_url": "//127.0.0.2/api/offer"}, {"room_url": "https://team.daily.co/room"},
    {"dailyRoom": "https://team.daily.co/room"}, {"wsUrl": "ws://[::1/ws"},
])  # fmt: skip
def test_a_session_url_on_another_host_is_refused_naming_the_flag(answer: dict[str, object]) -> None:
    why = elsewhere(BASE, answer)
    assert why is not None and "--allow-remote" in why


@pytest.mark.parametrize(("health", "refused"), [
    ({"status": "ok", "machines": "local"}, False), ({"status": "ok", "machines": "ecs"}, True),
    ({"status": "ok"}, True), ({"status": "ok", "machines": ["local"]}, True),
])  # fmt: skip
def test_only_a_dispatcher_whose_bots_run_here_is_load_tested_without_the_flag(health: dict[str, object],
                                                                              refused: bool) -> None:
    assert (not_local(BASE, health) is not None) is refused


class OtherHost:
    """A listener on 127.0.0.2 that takes connections and never completes a handshake."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.2", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@contextmanager
def stand_in(machines: str, ws_url: str, stop_answers: bool = True,
             health: dict[str, object] | None = None) -> Iterator[tuple[str, list[str]]]:
    """A dispatcher that answers a phone start with `ws_url`; the requests it got, as `METHOD /path`.
    `stop_answers=False`: a `DELETE` is never answered (until the stand-in is shut)."""
    seen: list[str] = []
    shut = threading.Event()

    class Dispatcher(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, object] | None = None) -> None:
            seen.append(f"{self.command} {self.path.split('?')[0]}")
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            if self.path == "/healthz":
                self._answer(200, {"status": "ok", "machines": machines, **(health or {})})
            else:  # a call's session exists once its stream connected: this one's never does
                self._answer(404, {"error": {"code": "session_not_found", "message": "no such session"}})

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(201, {"session_id": "s1", "status": "starting", "wsUrl": ws_url, "token": "tok"})

        def do_DELETE(self) -> None:  # noqa: N802
            if not stop_answers:
                seen.append(f"{self.command} {self.path} (held)")
                shut.wait()  # the caller has gone by then: nothing to answer
                return
            self._answer(204)

        def log_message(self, *args: object) -> None:
            pass

    try:
        with serving(Dispatcher) as url:
            yield url, seen
            shut.set()
    finally:
        shut.set()


@pytest.fixture
def other_host() -> Iterator[OtherHost]:
    listener = OtherHost()
    yield listener
    listener.close()


def loadtest(url: str, out: Path, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["loadtest", "--url", url, "--transport", "twilio", "--rate", "1/s",
                                           "--duration", "1s", "--out", str(out), *args], prog_name="voicefleet",
                              env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None, "VOICEFLEET_ADMIN_KEY": None})


def test_a_calls_stream_on_another_host_is_never_opened_and_its_session_is_stopped(other_host: OtherHost,
                                                                                   tmp_path: Path) -> None:
    with stand_in("local", f"ws://127.0.0.2:{other_host.port}/ws/twilio") as (url, seen):
        result = loadtest(url, tmp_path / "run")
    assert result.exit_code == 1, result.output
    session = json.loads((tmp_path / "run" / "result.json").read_text())["sessions"][0]
    assert session["code"] == "remote_session_url" and "--allow-remote" in session["message"], session
    assert other_host.accepted == []
    assert "DELETE /sessions/s1" in seen


def test_a_dispatcher_whose_bots_are_not_local_is_refused_before_any_start(tmp_path: Path) -> None:
    with stand_in("ecs", "ws://127.0.0.1:9/ws/twilio") as (url, seen):
        result = loadtest(url, tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert "machines: ecs" in result.stderr and "--allow-remote" in result.stderr
    assert seen == ["GET /healthz"] and not (tmp_path / "run").exists()


def test_with_allow_remote_a_stream_that_never_opens_ends_the_run_within_its_bound(
        other_host: OtherHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phone_line, "OPEN_TIMEOUT", 2.0)  # the upgrade's own deadline, shorter for the test
    began = time.monotonic()
    with stand_in("ecs", f"ws://127.0.0.2:{other_host.port}/ws/twilio") as (url, seen):
        result = loadtest(url, tmp_path / "run", "--allow-remote")
    took = time.monotonic() - began
    assert result.exit_code == 1, result.output
    assert len(other_host.accepted) == 1  # it was allowed there
    written = json.loads((tmp_path / "run" / "result.json").read_text())
    assert written["sessions"][0]["code"] == "connect_failed", written["sessions"]
    bound = written["settings"]["ends_within_seconds"]
    assert f"the run ends within {bound:g} s" in result.stderr
    # The failed call waits for nothing more (its session never exists): not the 180 s of a cold start.
    assert took < 60, took
    assert "DELETE /sessions/s1" in seen


async def test_a_session_whose_stop_hangs_is_cut_at_the_runs_bound(other_host: OtherHost,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Each step short, so a session's own deadline (2 s) passes while its stream's upgrade hangs; then
    # its DELETE hangs too, on a stand-in that never answers it: only the run's bound ends the run.
    monkeypatch.setattr(run, "SLACK", 0.0)
    monkeypatch.setattr(run, "STOP_SECONDS", 1.0)
    with stand_in("local", f"ws://127.0.0.2:{other_host.port}/ws/twilio", stop_answers=False) as (url, seen):
        call = Call(base_url=url, api_key=None, transport="twilio", speech=read_wav(SPEECH_WAV), turns=0,
                    release=None, run_id="bound", allow_remote=True, ready_timeout=1.0, audio_timeout=1.0)
        test = LoadTest(Plan(1.0, 1, 1.0, 1), call, Progress(1, 1.0, io.StringIO()), http_timeout=120.0)
        began = time.monotonic()
        await asyncio.wait_for(test.run(), 60)
        took = time.monotonic() - began
    assert test.ends_within == 3.0
    assert any(line.endswith("(held)") for line in seen), seen  # the stop was sent, and held
    assert took < 30, took  # not the DELETE's 120 s
    assert [r.outcome for r in test.records] == ["failed"] and test.done == test.records


def test_a_phone_run_on_a_dispatcher_whose_bots_lack_the_carriers_credentials_places_nothing(
        tmp_path: Path) -> None:
    lacking = {"bots_lack": {"twilio": ["TWILIO_AUTH_TOKEN"], "telnyx": ["TELNYX_API_KEY"]}}
    with stand_in("local", "ws://127.0.0.1:1/ws/twilio", health=lacking) as (url, seen):
        result = loadtest(url, tmp_path / "run")
    assert result.exit_code == 2, result.output
    said = result.stderr.strip().splitlines()
    assert len(said) == 1 and "TWILIO_AUTH_TOKEN" in said[0] and "LOCAL_BOT_ENV" in said[0]
    assert "TWILIO_ACCOUNT_SID" not in said[0]
    assert seen == ["GET /healthz"] and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("health", "said"), [
    ({"bots_lack": {"twilio": []}}, "the dispatcher gives its bots TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
    ({}, "the bot needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in its environment"),
])  # fmt: skip
def test_a_phone_run_says_which_carrier_settings_it_needs_before_it_starts(health: dict[str, object],
                                                                          said: str) -> None:
    line, may_run = carrier_check("twilio", {"status": "ok", "machines": "local", **health})
    assert may_run and line is not None and said in line
    assert carrier_check("webrtc", {"bots_lack": {"twilio": ["TWILIO_AUTH_TOKEN"]}}) == (None, True)

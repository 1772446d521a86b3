"""The official Pipecat clients (npm, pinned in web/package-lock.json), unmodified, in headless
Chromium against a real dispatcher and real bots.

Chromium's WebRTC never offers loopback candidates, so the WebRTC cases run the dispatcher, its
bots and the browser inside a private network namespace whose only non-loopback address is a
TEST-NET one (tests/support/private_net.py). The WebSocket client's media never leaves its socket,
so its cases run on loopback, without the namespace. web/test/drive.mjs drives the clients and reports
what each case saw; these tests judge it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.settings import Settings
from tests.dispatcher.conftest import _ClientContext
from tests.e2e.conftest import SPEECH
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.fakes.server import serve
from tests.support.browser import browser_mic, chromium_path, node_chromium_missing
from tests.support.private_net import PrivateNet, private_net, unavailable_reason
from tests.support.processes import READY_TIMEOUT as DISPATCHER_READY_TIMEOUT
from tests.support.processes import run_dispatcher

WEB = Path(__file__).parents[2] / "web"
WEBSOCKET_BOT = Path(__file__).parents[1] / "fixtures" / "projects" / "websocket_example" / "bot.py"
KEY = "pipecat-clients-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
DRIVE_TIMEOUT = 600  # a hang becomes a failure; nothing here is timed


def _missing() -> str | None:
    return node_chromium_missing(WEB)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
    pytest.mark.timeout(DRIVE_TIMEOUT + 60),  # the first test also runs the module's browser session
]


@pytest.fixture(scope="module")
def clients_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official clients, bundled as they are (web/test/clients.js) for the test page."""
    out = tmp_path_factory.mktemp("bundle") / "clients.js"
    subprocess.run(
        [str(WEB / "node_modules" / ".bin" / "esbuild"), "test/clients.js", "--bundle", "--format=iife",
         "--global-name=Pipecat", f"--outfile={out}", "--log-level=warning"],
        cwd=WEB, check=True, timeout=120,
    )  # fmt: skip
    return out


def drive(base: str, bundle: Path, mic: Path, cases: list[dict[str, Any]], prefix: list[str] | None = None) -> dict:
    config = {"base": base, "mic": str(mic), "bundle": str(bundle), "chromium": chromium_path(), "cases": cases}
    result = subprocess.run(
        [*(prefix or []), "node", str(WEB / "test" / "drive.mjs"), json.dumps(config)],
        capture_output=True, text=True, timeout=DRIVE_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return {case["name"]: case for case in json.loads(result.stdout)}


def warnings(case: dict[str, Any]) -> list[str]:
    return [m["text"] for m in case["console"] if m["type"] == "warning" and "WebGL" not in m["text"]]


@pytest.fixture(scope="module")
def net() -> Iterator[PrivateNet]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with private_net("i11") as created:
        yield created


@pytest.fixture(scope="module")
def webrtc_run(net: PrivateNet, clients_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """startBotAndConnect (with the README's request), connect to the runner's direct path, and a
    refused start, one after another, against one dispatcher."""
    tmp = tmp_path_factory.mktemp("webrtc")
    log = tmp / "dispatcher.log"
    # Every address of the namespace: the browser comes in on its TEST-NET one, the local bots
    # dial the dispatcher's control channel on loopback.
    env = {**os.environ, "HOST": "0.0.0.0", "PORT": "0", "DISPATCHER_API_KEYS": KEY}
    with open(log, "wb") as out:
        dispatcher = subprocess.Popen([*net.exec_prefix, sys.executable, "-m", "dispatcher"], env=env,
                                      stdout=out, stderr=out)  # fmt: skip
    try:
        base = f"http://{net.address}:{_bound_port(log, dispatcher)}"
        cases = [{"name": "readme", "kind": "webrtc", "requestData": SHAPES["readme"], "headers": AUTH}]
        cases.append({"name": "runner-direct", "kind": "webrtc", "direct": True, "requestData": {"lang": "en"},
                      "headers": AUTH})  # fmt: skip
        cases.append({"name": "refused", "kind": "error", "requestData": {"transport": "daily"}, "headers": AUTH})
        return drive(base, clients_bundle, browser_mic(SPEECH, tmp / "mic.wav"), cases, net.exec_prefix)
    finally:
        dispatcher.terminate()
        try:
            dispatcher.wait(timeout=15)
        except subprocess.TimeoutExpired:
            dispatcher.kill()
            dispatcher.wait()


def _bound_port(log: Path, process: subprocess.Popen[bytes]) -> int:
    """The port the dispatcher bound (PORT=0 inside the namespace), from its start-up line, within the
    start-up bound every dispatcher the tests run gets (60 s ran out at a load average of 45)."""
    deadline = time.monotonic() + DISPATCHER_READY_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(rb"voicefleet: open http://[^:]+:(\d+)/", log.read_bytes())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the dispatcher did not start:\n{log.read_text(errors='replace')}")


# Pipecat's request shapes for POST /start. The client sends any of them alike and reads the same answer:
# the README's goes through the browser, the others are checked to get that answer (below) and to give
# the bot their body (tests/dispatcher/api/test_pipecat_shapes.py).
SHAPES: dict[str, dict[str, Any]] = {
    "readme": {"initial_prompt": "You are a parrot", "llm_provider": "none"},
    "pipecat-cloud": {"createDailyRoom": False, "body": {"lang": "en"}},
    "dev-runner": {"transport": "webrtc", "body": {"lang": "en"}},
}


async def test_every_pipecat_start_shape_gets_the_answer_the_browsers_client_connected_with() -> None:
    """The dispatcher in-process, its bots the stand-in: each shape is started and answered the README's
    answer, the one test_start_bot_and_connect_reaches_ready… connects the official client with."""
    async with _ClientContext(Settings(), grace=2.0) as api:
        answers = {name: await api.post("/start", json=shape) for name, shape in SHAPES.items()}
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(SHAPES, 201)
    assert {name: sorted(answer.json()) for name, answer in answers.items()} == dict.fromkeys(SHAPES, ["sessionId"])


@pytest.mark.parametrize("shape", ["readme", "runner-direct"])
def test_start_bot_and_connect_reaches_ready_hears_the_bot_and_sees_the_user_speak(webrtc_run, shape):
    case = webrtc_run[shape]
    assert "failure" not in case and "pageError" not in case, case
    assert case["states"][-3:] == ["ready", "disconnecting", "disconnected"], case["states"]
    assert "bot-ready" in case["events"]
    assert {"user-started-speaking", "user-stopped-speaking", "bot-started-speaking"} <= set(case["events"])
    assert case["maxBotLevel"] > 0.02
    assert case["errors"] == []
    assert [w for w in warnings(case) if "connection parameter" in w] == []  # the answer holds only what it reads
    assert case["offHost"] == []  # WavMediaManager: nothing from Daily's CDN


def test_a_refused_start_shows_the_dispatchers_message_in_the_client(webrtc_run):
    case = webrtc_run["refused"]
    message = "transport 'daily' is not offered by this deployment; it offers webrtc"
    assert case["status"] == 400
    assert message in case["thrown"]
    assert any(message in error for error in case["errors"])


def test_the_daily_transport_joins_with_a_cloud_start_answer_and_warns_about_nothing(clients_bundle, tmp_path):
    with serve(FakeDaily(), "/v1") as daily, serve(FakeFly()) as fly:
        env = {**daily.env, **fly.env, "MACHINES": "fly", "DISPATCHER_API_KEYS": KEY}
        with run_dispatcher(tmp_path, env) as dispatcher:
            cases = [
                {"name": "pipecat", "kind": "daily", "requestData": {"createDailyRoom": True}, "headers": AUTH},
                {"name": "ours", "kind": "daily", "requestData": {"body": {}}, "headers": AUTH},  # control
            ]
            run = drive(dispatcher.base_url, clients_bundle, browser_mic(SPEECH, tmp_path / "mic.wav"), cases)
    pipecat, ours = run["pipecat"], run["ours"]
    assert set(pipecat["answer"]) == {"dailyRoom", "dailyToken"}
    assert pipecat["joinedWith"] == {"url": pipecat["answer"]["dailyRoom"], "token": pipecat["answer"]["dailyToken"]}
    assert [w for w in warnings(pipecat) if "unrecognized" in w.lower()] == []
    # The control: our own full answer does make daily-js warn, so the check above can fail.
    assert any("Ignoring unrecognized property 'session_id'" in w for w in warnings(ours))


@pytest.fixture(scope="module")
def websocket_run(
    request: pytest.FixtureRequest, clients_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, str]:
    """pipecat-examples' WebSocket client flow against a dispatcher whose bot is a WebSocket bot in
    the example's shape: the token in each form the client can send (keyless, the example's form: the
    forms are read alike), and a wrong one. With API keys a token the upgrade does not read is refused;
    keyless it would quietly become another session."""
    tmp = tmp_path_factory.mktemp("websocket")
    keyed = request.param == "api-keys"
    env = {"BOT_FILE": str(WEBSOCKET_BOT), "DISPATCHER_API_KEYS": KEY if keyed else "", "RESERVE_MIN_IDLE": "1"}
    start = {"transport": "websocket"}  # what the example's client posts
    headers = AUTH if keyed else {}
    # Keyless, the example's own form is the control that a token is read at all; the same token in the
    # other form, read the same way, is the keyed run's.
    forms = ["example", "token", "wrong"] if keyed else ["example", "wrong"]
    cases = [{"name": f, "kind": "websocket", "form": f, "requestData": start, "headers": headers} for f in forms]
    with run_dispatcher(tmp, env) as dispatcher:
        run = drive(dispatcher.base_url, clients_bundle, browser_mic(SPEECH, tmp / "mic.wav"), cases)
        accepted = [run[form].get("sessionId") for form in forms if form != "wrong"]
        deadline = time.monotonic() + 30  # a call's log line is written once its bot has let go
        while not all(f"phone call {s} (generic" in dispatcher.log() for s in accepted):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return run, dispatcher.log()


@pytest.mark.parametrize(
    ("websocket_run", "form"),
    [("api-keys", "example"), ("api-keys", "token"), ("keyless", "example")],
    indirect=["websocket_run"], scope="module",
)  # fmt: skip
def test_the_websocket_client_reaches_ready_hears_the_bot_and_the_bot_hears_the_user(websocket_run, form):
    run, log = websocket_run
    case = run[form]
    assert "failure" not in case and "pageError" not in case, case
    assert case["answerKeys"] == ["sessionId", "token", "wsUrl"]
    assert case["states"][-3:] == ["ready", "disconnecting", "disconnected"], case["states"]
    assert "bot-ready" in case["events"]
    # The bot's VAD heard the page's microphone, and it answered: audio the page decoded.
    assert {"user-started-speaking", "user-stopped-speaking", "bot-started-speaking"} <= set(case["events"])
    assert case["maxBotLevel"] > 0.02
    assert case["offHost"] == []
    # The session the answer named is the one the socket ran (the token was read, not ignored).
    assert re.search(rf"phone call {case['sessionId']} \(generic, token\): ended by", log), log[-3000:]


@pytest.mark.parametrize("websocket_run", ["api-keys", "keyless"], indirect=True, scope="module")
def test_a_wrong_token_is_refused_and_starts_no_session(websocket_run):
    run, log = websocket_run
    case = run["wrong"]
    assert "failure" in case and case["state"] != "ready"
    assert "bot-ready" not in case["events"] and case["maxBotLevel"] == 0
    assert "generic upgrade refused (token_forged)" in log
    calls = re.findall(r"phone call (\S+) \(generic", log)
    # Only the accepted forms' sessions ran: the refused socket became no session of its own.
    accepted = [seen["sessionId"] for name, seen in run.items() if name != "wrong"]
    assert sorted(calls) == sorted(accepted), log[-3000:]

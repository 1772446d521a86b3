"""Calls placed through a trunk: `POST /calls` at a real local dispatcher hands the call to
`python -m sipedge`, whose INVITE reaches SIPp as the far end (tests/sip/callee_*.xml) once the
session's bot (the parrot) has joined. The far end answers (and hears the bot say its words back),
is busy, never answers (the edge CANCELs), declines, or challenges the INVITE for a digest; each
outcome is a `call_outcome` event, and a call not answered ends its session with the outcome as
its reason, which the `session.ended` webhook carries."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from hashlib import md5
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.sipp import RECEIVED, SippRun, run_callee
from tests.support.audio import BOT_AUDIO_RMS, Pcm, echo_similarity, rms
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher, terminate
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, SIPp, a bot process importing Pipecat

EDGE_SECRET = "edge-control-secret-for-the-tests-0123456789"
USD_PER_MINUTE = 0.6  # the far trunk's outbound minutes, billed by the second
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"outbound-webhook-secret-32-bytes").decode()
DIGEST = ("carol", "digest-password-42")
TO, FROM = "+14155550100", "+14155550199"
OUTCOME_SECONDS = 60.0
CALLEE_SPEAKS_UNTIL_SECONDS = 6.5  # after the answer (tests/sip/callee_answers.xml)
ECHO_SECONDS, ECHO_QUIET_SECONDS = 30.0, 1.5
TOLERANCE_SECONDS = 1.0  # the edge's moments (the callee's ACK, its own BYE) against SIPp's, on a busy machine


class Outbound:
    def __init__(self, dispatcher: DispatcherProcess, edge: EdgeProcess, callee_port: int, hooks: Path,
                 control_port: int) -> None:
        self.control = f"http://127.0.0.1:{control_port}"
        self.dispatcher = dispatcher
        self.edge = edge
        self.callee_port = callee_port
        self.hooks = hooks


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    control_port, callee_port, hook_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    hooks = tmp_path_factory.mktemp("hooks") / "deliveries.jsonl"
    receiver = subprocess.Popen([sys.executable, "-m", "tests.replicas.webhook_receiver", str(hook_port), str(hooks)],
                                env={**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET})
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET,
           "SIP_CALL_MAX_WAIT_SECONDS": "1",
           "WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hooks", "WEBHOOK_SECRET": WEBHOOK_SECRET}
    # The keyless local dispatcher's calls are the key "local"'s; `others` places calls for another team only.
    far = f'termination_uri = "sip:127.0.0.1:{callee_port}"\ncallers = ["local"]\ncaller_ids = ["{FROM}"]'
    trunks = (f'\n[[trunk]]\nname = "far"\n{far}\ncps = 50\nring_seconds = 3\n'
              f'usd_per_minute = {{ outbound = {USD_PER_MINUTE} }}\nbilling_increment_seconds = 1\n'
              # `guarded` also takes 0.1 calls a second: its one call's pace refuses a second at once.
              f'\n[[trunk]]\nname = "guarded"\n{far}\ncps = 0.1\ndigest_username = "{DIGEST[0]}"\n'
              'digest_password_env = "GUARDED_PASSWORD"\n'
              f'\n[[trunk]]\nname = "others"\ntermination_uri = "sip:127.0.0.1:{callee_port}"\ncallers = ["team-b"]\n')
    settings = f'control_port = {control_port}\n{KEY_SETTINGS}'
    keys = edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}")  # derived for the URL the dispatcher lists
    try:
        with (run_dispatcher(tmp_path_factory.mktemp("sip-out-dispatcher"), env) as dispatcher,
              run_edge(dispatcher, tmp_path_factory.mktemp("sip-out-edge"), settings=settings, trunks=trunks,
                       env={**keys, "GUARDED_PASSWORD": DIGEST[1]}) as edge):
            yield Outbound(dispatcher, edge, callee_port, hooks, control_port)
    finally:
        terminate(receiver)


async def echo_heard(capture: LoopbackRtp) -> None:
    """Until the parrot has said the callee's words back and gone quiet, within ECHO_SECONDS. The callee
    speaks 2.5 s after the answer, for 4 s; the echo comes after, later on a loaded host (a fixed wait
    of 9 s once cut it in half: 0.51). The edge sends silence between, so RTP never goes quiet itself."""
    window, deadline = int(ECHO_QUIET_SECONDS * 8000), time.monotonic() + ECHO_SECONDS
    while time.monotonic() < deadline:
        heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
        after = heard[int(CALLEE_SPEAKS_UNTIL_SECONDS * 8000):]
        voiced_windows = [rms(after[start:start + 4000]) > BOT_AUDIO_RMS for start in range(0, len(after), 4000)]
        if any(voiced_windows) and len(after) > window and rms(heard[-window:]) < BOT_AUDIO_RMS:
            return
        await asyncio.sleep(0.25)


async def place(api: httpx.AsyncClient, out: Outbound, trunk: str, scenario: str, *,
                media_port: int | None = None, variables: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[str, asyncio.Task[SippRun]]:
    """SIPp listening as the far end, then `POST /calls` (with `headers`): the call's session and SIPp's run."""
    callee = asyncio.create_task(asyncio.to_thread(run_callee, scenario, out.callee_port, out.edge.workdir,
                                                   media_port=media_port, variables=variables))
    await asyncio.sleep(0.5)  # SIPp binds its port
    answer = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": trunk, "body": {"ticket": "T-1"}},
                            headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "starting"
    assert (answer.json()["to"], answer.json()["from"], answer.json()["trunk"]) == (TO, FROM, trunk)
    assert answer.headers["Location"] == f"/sessions/{answer.json()['session_id']}"
    return answer.json()["session_id"], callee


async def answered_and_ended(api: httpx.AsyncClient, out: Outbound, capture: LoopbackRtp, media_port: int,
                             ) -> tuple[str, SippRun]:
    """A call through the far trunk, answered, held until the parrot said the callee's words back, then ended
    from the bot's side (the edge sends BYE): its session and the callee's run; `capture` stopped."""
    try:
        session_id, callee = await place(api, out, "far", "callee_answers", media_port=media_port)
        outcome = await outcome_of(api, out, session_id)
        assert outcome["outcome"] == "answered", outcome
        await echo_heard(capture)  # only then the bot's side ends: the echo is whole, however late it came
        stopped = await api.delete(f"/sessions/{session_id}")  # the bot's side ends: the edge sends BYE
        assert stopped.status_code in (202, 204), stopped.text
        call = await callee
        capture.wait_quiet()
    finally:
        capture.stop()
    return session_id, call


async def events_of(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/sessions/{session_id}/timeline")
    return list(answer.json()["events"]) if answer.status_code == 200 else []


async def outcome_of(api: httpx.AsyncClient, out: Outbound, session_id: str,
                     events: tuple[str, ...] = ("call_outcome",)) -> dict[str, Any]:
    """The session's first of `events` (a call never placed ends with no `call_outcome`: add `ended`)."""
    deadline = time.monotonic() + OUTCOME_SECONDS
    while time.monotonic() < deadline:
        found = [e for e in await events_of(api, session_id) if e["event"] in events]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no outcome for {session_id}\n{out.edge.log()}\n{out.dispatcher.log()[-4000:]}")


async def ended_webhook(out: Outbound, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.hooks.exists():
            for line in out.hooks.read_text().splitlines():
                hook = json.loads(line)
                if hook.get("type") == "session.ended" and hook["data"]["session_id"] == session_id:
                    return dict(hook["data"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no session.ended webhook for {session_id}")


def first_received(run: SippRun, method: str) -> float | None:
    """When SIPp first received a `method` request (epoch seconds)."""
    for stamp, first_line in RECEIVED.findall(run.messages):
        if first_line.startswith(f"{method} "):
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


async def assert_ended_with(api: httpx.AsyncClient, out: Outbound, session_id: str, reason: str,
                            sip_status: int) -> None:
    ended = [e for e in await events_of(api, session_id) if e["event"] == "ended"]
    assert ended and ended[0]["reason"] == reason and ended[0]["sip_status"] == sip_status, ended
    hook = await ended_webhook(out, session_id)
    assert (hook["reason"], hook["sip_status"]) == (reason, sip_status), hook
    assert await wait_active_sessions(api, 0) == 0


async def test_an_answered_call_goes_out_once_its_bot_joined_and_the_callee_hears_the_bot(outbound: Outbound) -> None:
    if (why := can_capture()) is not None:
        pytest.skip(why)
    media_port = free_port_pair(2)
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        capture = LoopbackRtp(media_port)
        session_id, call = await answered_and_ended(api, outbound, capture, media_port)
        assert call.returncode == 0, f"{call.output}\n{outbound.edge.log()}"
        events = {e["event"]: e["at"] for e in reversed(await events_of(api, session_id))}
        invited = first_received(call, "INVITE")
        assert invited is not None and events["joined"] <= invited, (events, invited)  # the bot was ready first
        heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
        # The parrot's greeting, said as its stream opened while the phone rang, is the callee's first
        # words (before they speak, 2.5 s in): nothing the bot said was lost to the ringing.
        assert rms(heard[: 8000 * 2]) > BOT_AUDIO_RMS, outbound.edge.log()
        speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
        similarity = echo_similarity(voiced(speech), heard, 8000)
        assert similarity > 0.7, f"the callee's words came back at {similarity:.2f}\n{outbound.edge.log()}"
        assert await wait_active_sessions(api, 0) == 0
        # Its minutes: the edge's count from the callee's answer to its own BYE, which it tells as it sends it
        # (after the session's end, as the bot's side ended first); SIPp saw the same span, ACK to BYE.
        sip = (await outcome_of(api, outbound, session_id, ("sip_ended",)))
        acked, bye = first_received(call, "ACK"), first_received(call, "BYE")
        assert (sip["by"], sip["how"]) == ("edge", "bye") and acked is not None and bye is not None, sip
        assert sip["answered_seconds"] == pytest.approx(bye - acked, abs=TOLERANCE_SECONDS), (sip, acked, bye)
        line = (await api.get(f"/sessions/{session_id}")).json()["cost"]["telephony"]
        assert (line["trunk"], line["direction"], line["answered"]) == ("far", "outbound", True), line
        assert line["seconds"] == pytest.approx(sip["answered_seconds"], abs=0.01), (line, sip)
        assert line["usd"] == pytest.approx(math.ceil(line["seconds"]) / 60 * USD_PER_MINUTE, abs=1e-6), line
        # The webhook went at the session's end, with the edge's count or, when it came after, the dispatcher's
        # own view (the answer's event to the bot's end): the same span, give or take the hops between them.
        hooked = (await ended_webhook(outbound, session_id))["cost"]["telephony"]
        assert hooked["answered"] and hooked["seconds"] == pytest.approx(line["seconds"], abs=TOLERANCE_SECONDS)


# A final refusal (486) and a ring-out (the edge's CANCEL): the two ways a call goes unanswered. Which outcome
# each final status is, is test_outbound_parts.py's test_the_far_end_s_final_answer_is_the_call_s_outcome
# (sipedge/outbound_call.outcome_of); a callee's 603 ending as "rejected" end to end is the command's test below.
async def assert_not_answered(api: httpx.AsyncClient, out: Outbound, session_id: str, call: SippRun, reason: str,
                              sip_status: int) -> None:
    """The call's outcome `reason` (`sip_status`), its session ended with it, its webhook too, and no minutes."""
    outcome = await outcome_of(api, out, session_id)
    assert (outcome["outcome"], outcome["sip_status"]) == (reason, sip_status), outcome
    assert call.returncode == 0, f"{call.output}\n{out.edge.log()}"
    await assert_ended_with(api, out, session_id, reason, sip_status)
    line = (await ended_webhook(out, session_id))["cost"]["telephony"]  # never answered: no minutes
    assert (line["trunk"], line["direction"], line["answered"], line["usd"]) == ("far", "outbound", False, 0), line


async def test_a_call_rung_out_is_cancelled_and_ends_its_session_with_no_answer(outbound: Outbound) -> None:
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        started = time.monotonic()
        session_id, callee = await place(api, outbound, "far", "callee_rings")
        await outcome_of(api, outbound, session_id)
        call = await callee
        # Rang the trunk's ring_seconds (3), then the edge's CANCEL.
        rang, cancelled = first_received(call, "INVITE"), first_received(call, "CANCEL")
        assert rang is not None and cancelled is not None and 2.5 <= cancelled - rang <= 6, (rang, cancelled)
        assert time.monotonic() - started < OUTCOME_SECONDS
        await assert_not_answered(api, outbound, session_id, call, "no_answer", 487)


class Trap:
    """A server standing for a host the client names: whatever connects to it, its first line."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heard.append((await reader.readline()).decode(errors="replace").strip())
        writer.close()


async def test_a_busy_call_ends_its_session_busy_streams_to_the_edges_own_dispatcher_and_is_placed_once_a_key(
        outbound: Outbound) -> None:
    """One busy call (486), asked for with a Host of the client's and an Idempotency-Key. Its session ends busy.
    The request's Host is the client's to choose (a keyless dispatcher takes loopback names only, a keyed one
    any): were the edge handed a stream URL built from it, the callee's audio and the session's token would go
    where the key's holder says, here a server of theirs on another port. Asked again with the same key, the
    same session answers and the edge is handed nothing twice."""
    trap = Trap()
    server = await asyncio.start_server(trap, "127.0.0.1", 0)
    named = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    headers = {"Host": named, "Idempotency-Key": "order-1042"}
    try:
        async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
            session_id, callee = await place(api, outbound, "far", "callee_busy", headers=headers)
            outcome = await outcome_of(api, outbound, session_id, ("call_outcome", "ended"))
            assert trap.heard == [], f"the edge connected to the client's host: {trap.heard}"
            await assert_not_answered(api, outbound, session_id, await callee, "busy", 486)
            again = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "far", "body": {"ticket": "T-1"}},
                                   headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["session_id"] == session_id
            assert outbound.edge.log().count(f"taken for session {session_id}") == 1, "placed once"
            assert outcome["event"] == "call_outcome", outcome
    finally:
        server.close()
        await server.wait_closed()


async def test_a_trunk_s_digest_challenge_is_answered_with_its_credential_and_its_pace_refuses_a_second_call(
        outbound: Outbound) -> None:
    """The `guarded` trunk takes 0.1 calls a second and a call waits at most 1 s (SIP_CALL_MAX_WAIT_SECONDS): a second
    call asked right after its first is refused with the wait."""
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        session_id, callee = await place(api, outbound, "guarded", "callee_challenges")
        again = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "guarded"})
        assert again.status_code == 429, again.text
        assert 5 <= int(again.headers["Retry-After"]) <= 10
        assert "would wait" in again.json()["error"]["message"]
        outcome = await outcome_of(api, outbound, session_id)
        call = await callee
        assert call.returncode == 0, f"{call.output}\n{outbound.edge.log()}"
        # The retried INVITE's digest (RFC 2617, no qop) is the one carol's password makes.
        found = re.search(r"^Proxy-Authorization: Digest (.*)$", call.messages, re.MULTILINE)
        assert found is not None, call.messages
        fields = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        assert (fields["username"], fields["realm"]) == (DIGEST[0], "trunk.example")
        ha1 = md5(f"{DIGEST[0]}:trunk.example:{DIGEST[1]}".encode()).hexdigest()
        ha2 = md5(f"INVITE:{fields['uri']}".encode()).hexdigest()
        assert fields["response"] == md5(f"{ha1}:{fields['nonce']}:{ha2}".encode()).hexdigest()
        assert (outcome["outcome"], outcome["sip_status"]) == ("busy", 486), outcome  # the retried INVITE's answer


async def test_an_unknown_trunk_is_refused_naming_the_trunks(outbound: Outbound) -> None:
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        answer = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "nowhere"})
        assert answer.status_code == 404, answer.text
        assert "far, guarded, others" in answer.json()["error"]["message"]


async def test_a_key_calls_only_through_trunks_that_name_it_to_allowed_numbers_from_their_numbers(
        outbound: Outbound) -> None:
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        others = await api.post("/calls", json={"to": TO, "from": FROM, "trunk": "others"})
        assert others.status_code == 403, others.text
        assert "`callers`" in others.json()["error"]["message"]
        for to, setting in (("+19005550100", "`destinations`"), ("+911", "`destinations`")):
            premium = await api.post("/calls", json={"to": to, "from": FROM, "trunk": "far"})
            assert premium.status_code == 403, premium.text
            assert setting in premium.json()["error"]["message"]
        spoofed = await api.post("/calls", json={"to": TO, "from": "+14155550123", "trunk": "far"})
        assert spoofed.status_code == 403 and "`caller_ids`" in spoofed.json()["error"]["message"], spoofed.text
    assert outbound.edge.log().count("refused: trunk 'far' does not call") == 3, outbound.edge.log()


async def test_the_edge_s_control_api_takes_only_the_dispatcher_s_secret(outbound: Outbound) -> None:
    order = {"session_id": "abc", "stream_path": "/ws/exotel/t", "to": TO, "from": FROM,
             "trunk": "far", "caller": "local"}
    async with httpx.AsyncClient(base_url=outbound.control, timeout=10) as edge:
        for given in ({}, {"Authorization": "Bearer not-the-secret"}):
            assert (await edge.post("/calls", json=order, headers=given)).status_code == 401
            assert (await edge.get("/trunks", headers=given)).status_code == 401
        signed = {"Authorization": f"Bearer {edge_keys(EDGE_SECRET, outbound.control)['EDGE_CONTROL_KEY']}"}
        inbound = await edge.post("/calls", json={**order, "trunk": "loopback"}, headers=signed)  # inbound only
        assert inbound.status_code == 409 and inbound.json()["error"]["code"] == "trunk_inbound_only", inbound.text
        assert "far, guarded, others" in inbound.json()["error"]["message"]  # the trunks that place calls
        bad = await edge.post("/calls", json={**order, "to": "12"}, headers=signed)
        assert bad.status_code == 422 and "to" in bad.json()["error"]["message"]
        # A hand-over retried (its answer lost) places nothing twice. Its stream's token is no call's:
        # the call is reported not placed.
        for _ in range(2):
            assert (await edge.post("/calls", json={**order, "session_id": "retried"}, headers=signed)).status_code \
                == 202
    deadline = time.monotonic() + 30
    while "call retried (session retried) not_placed" not in outbound.edge.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert outbound.edge.log().count("taken for session retried") == 1, outbound.edge.log()
    assert "call retried (session retried) not_placed" in outbound.edge.log()


async def test_the_command_places_a_call_prints_its_session_and_follows_it_to_its_outcome(outbound: Outbound) -> None:
    callee = asyncio.create_task(asyncio.to_thread(run_callee, "callee_declines", outbound.callee_port,
                                                   outbound.edge.workdir))
    await asyncio.sleep(0.5)  # SIPp binds its port
    result = await asyncio.to_thread(
        CliRunner().invoke, voicefleet,
        ["calls", "place", TO, "--from", FROM, "--trunk", "far", "--body", '{"ticket": "T-2"}', "--wait", "60"],
        env={"VOICEFLEET_URL": outbound.dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": None, "VOICEFLEET_API_KEY": None})
    assert (await callee).returncode == 0
    session_id, said = result.output.splitlines()[:2]
    assert re.fullmatch(r"[0-9a-f]{24}", session_id), result.output
    assert said == "rejected (SIP 603)", result.output
    assert result.exit_code == 1, result.output  # not answered: a script can tell
    assert "not answered" in result.output


def test_the_command_refuses_a_body_that_is_not_a_json_object() -> None:
    result = CliRunner().invoke(voicefleet, ["calls", "place", TO, "--from", FROM, "--trunk", "far",
                                             "--body", "[1]", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--body must be a JSON object" in result.output

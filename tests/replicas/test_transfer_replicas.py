"""A call handed to a person through whichever replica is asked: the Twilio call's stream at replica A,
its bot's channel and media socket at replica B (its BOT_CHANNEL_URL points there, as a load balancer
may send it). Two real dispatcher processes on a real redis-server, real bot processes (voicefleet's
host with the echo bot, tests/phone/echo_bot.py), the strict fake of Twilio's Calls resource, and a
webhook receiver in a process of its own verifying every delivery."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.twilio import FakeTwilio
from tests.phone.conftest import phone_env
from tests.phone.test_transfer import (
    ADMIN,
    DESK,
    KEY,
    LINE,
    TEAM,
    ended_transferred,
    session_of,
    twilio_ends_the_stream,
    webhook_call,
)
from tests.replicas.test_phone_calls import bots_dial
from tests.replicas.test_webhooks_replicas import deliveries
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher, terminate
from tests.support.redis_server import RedisServer, redis_server
from tests.support.session_api import METRICS_KEY
from tests.support.waiting import until

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

SECRET = "whsec_" + base64.b64encode(b"transfer-replicas-hook-secret-32").decode()


@dataclass
class Pair:
    store: RedisServer
    twilio: FakeTwilio
    a: DispatcherProcess  # takes Twilio's webhook and stream, launches the calls' bots
    b: DispatcherProcess  # where those bots dial their channel and media; asked for the transfers
    reports: Path  # what the echo bot writes (its own transfer's answer)
    hooks: Path  # each webhook delivery, one JSON line

    def transferred_hooks(self, session_id: str) -> list[dict[str, object]]:
        return [d for d in deliveries(self.hooks) if d.get("type") == "session.transferred"
                and d["data"]["session_id"] == session_id]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("transfer-replicas")
    reports, media = root / "reports", root / "media"
    reports.mkdir()
    media.mkdir()
    port = free_port()
    hooks = root / "hooks.jsonl"
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(root))
        twilio = stack.enter_context(serve(FakeTwilio()))
        receiver = subprocess.Popen([sys.executable, "-m", "tests.replicas.webhook_receiver", str(port), str(hooks)],
                                    env={**os.environ, "WEBHOOK_SECRET": SECRET})
        stack.callback(terminate, receiver)
        common = {
            **phone_env(reports),
            **store.env,
            **twilio.env(),
            "REDIS_LEASE_SECONDS": "6",
            "BOT_CHANNEL_TOKEN": "transfer-replicas-deployment-secret-0123456789",
            "DISPATCHER_API_KEYS": KEY,
            "DISPATCHER_ADMIN_KEYS": METRICS_KEY,
            "PHONE_TRANSFER_TARGETS": f"{DESK},pbx.example.com",
            "RESERVE_MIN_IDLE": "0",
            "RESERVE_MAX_IDLE": "0",  # every call's bot is launched cold by A
            "START_WAIT_SECONDS": "120",  # a cold bot imports Pipecat first (seconds on a busy host)
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/hooks",
            "WEBHOOK_SECRET": SECRET,
            "LOG_LEVEL": "info",
        }
        (root / "b").mkdir()
        b = stack.enter_context(run_dispatcher(root / "b", {**common, "REPLICA_ID": "r-b"}))
        (root / "a").mkdir()
        a = stack.enter_context(run_dispatcher(root / "a", {
            **common, "PHONE_TEST_TRANSFER_LINE": LINE, "PHONE_TEST_TRANSFER_TO": DESK,  # the echo bot's own transfer
            **bots_dial(b, media, common["LOCAL_BOT_ENV"], "PHONE_TEST_TRANSFER_LINE", "PHONE_TEST_TRANSFER_TO"),
        }))
        yield Pair(store, twilio, a, b, reports, hooks)


@pytest.fixture
async def apis(pair: Pair) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with api_client(base_url=pair.a.base_url, timeout=60) as a, \
            api_client(base_url=pair.b.base_url, timeout=60) as b:
        yield a, b


def held_at(pair: Pair, session_id: str) -> tuple[str | None, str | None]:
    """The replicas holding the call's stream and the bot's channel, as the store records them."""
    admin = pair.store.admin()
    try:
        call = admin.hget(f"{{voicefleet}}:call:{session_id}", "replica")
        owner = admin.get(f"{{voicefleet}}:owner:{session_id}")
        return (str(call) if call is not None else None), (str(owner) if owner is not None else None)
    finally:
        admin.close()


async def test_a_transfer_asked_at_the_replica_without_the_call_is_done_by_the_one_holding_it(
    pair: Pair, apis: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = apis
    call, at_twilio = await webhook_call(a, pair.twilio)
    session_id = await session_of(a, call)
    assert held_at(pair, session_id) == ("r-a", "r-b")  # the stream at A, the bot at B
    off_list = await b.post(f"/sessions/{session_id}/transfer", json={"to": "+882123456789"}, headers=ADMIN)
    assert (off_list.status_code, off_list.json()["error"]["code"]) == (403, "target_not_allowed"), off_list.text
    ending = asyncio.create_task(twilio_ends_the_stream(at_twilio, call))
    answer = await b.post(f"/sessions/{session_id}/transfer", json={"to": DESK}, headers=ADMIN)
    if answer.status_code != 200:
        ending.cancel()  # Twilio was never asked: nothing will end the stream
    assert answer.status_code == 200, f"{answer.text}\n{pair.b.log()[-3000:]}"
    await ending
    assert answer.json()["status"] == "transferred" and answer.json()["carrier_status"] == "in-progress"
    assert at_twilio.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']
    assert len(pair.twilio.calls_to("POST", at_twilio.sid)) == 1
    events = await ended_transferred(b, session_id)  # read at B, written at A
    assert [e["to"] for e in events if e["event"] == "transferred"] == [DESK]
    await until(lambda: pair.transferred_hooks(session_id), "the session.transferred webhook", timeout=30)
    await asyncio.sleep(2.0)  # a second delivery (the other replica's) would come within the outbox's poll
    assert len(pair.transferred_hooks(session_id)) == 1, deliveries(pair.hooks)

    # Over now, at either replica: refused as over, and nothing more is sent to Twilio.
    for api in (a, b):
        over = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK}, headers=ADMIN)
        assert (over.status_code, over.json()["error"]["code"]) == (409, "call_over"), over.text
    assert len(pair.twilio.calls_to("POST", at_twilio.sid)) == 1
    # the call's record goes with its stream, which replica A closes after the transfer's answer
    await until(lambda: held_at(pair, session_id)[0] is None, "the call's record gone with its stream", timeout=30)


async def test_the_bots_own_transfer_reaches_its_call_at_another_replica(
    pair: Pair, apis: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = apis
    call, at_twilio = await webhook_call(a, pair.twilio, to=LINE)  # the echo bot transfers these itself
    reports = await until(lambda: _transfer_reports(pair), "the bot's transfer answer", timeout=120)
    session_id = reports[0]
    said = json.loads((pair.reports / f"{session_id}.transfer.json").read_text())  # its answer, or its failure
    assert said.get("status") == "transferred", said
    # Its channel is at B while the call is up, read then: after the end, a run beside a CPU hog once read A as
    # the owner record's (which replica holds a session's record once it ended is not this test's point).
    assert held_at(pair, session_id) == ("r-a", "r-b")
    await twilio_ends_the_stream(at_twilio, call)
    assert at_twilio.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']
    events = await ended_transferred(a, session_id)
    assert [e["to"] for e in events if e["event"] == "transferred"] == [DESK]


async def test_a_call_that_cannot_be_transferred_is_refused_at_b_as_at_a_and_with_the_store_down_b_says_try_again(
    pair: Pair, apis: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = apis
    start = await a.post("/start", json={"transport": "twilio"}, headers=TEAM)  # the team's own call
    assert start.status_code == 201, start.text
    session_id = start.json()["sessionId"]
    call = CarrierCall("twilio", f"{start.json()['wsUrl']}/{start.json()['token']}", call_id="CA" + "e" * 32)
    await call.open()
    await call.handshake()
    await call.next_bot_audio(timeout=120)
    assert held_at(pair, session_id)[0] == "r-a"
    # Its stream names a CallSid no signature vouches for: A's refusal, said at B.
    unverified = await b.post(f"/sessions/{session_id}/transfer", json={"to": DESK}, headers=TEAM)
    assert (unverified.status_code, unverified.json()["error"]["code"]) == (409, "call_not_verified"), unverified.text
    pair.store.stop()
    try:
        answer = await b.post(f"/sessions/{session_id}/transfer", json={"to": DESK}, headers=TEAM)
        # Here B's look-up of the session's bot already needs the store (local mode: the replica running
        # it is asked through the store); with a cloud provider the call's record is what it cannot read
        # (tests/dispatcher/phone/test_transfer_anywhere.py). Either way: try again, nothing was sent.
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        pair.store.start()
        with contextlib.suppress(ConnectionClosed):  # its media crossed the store: the outage ended the call
            await call.hang_up()
    assert not pair.twilio.calls_to("POST", "CA" + "e" * 32)


def _transfer_reports(pair: Pair) -> list[str]:
    return [p.name.removesuffix(".transfer.json") for p in pair.reports.glob("*.transfer.json")]

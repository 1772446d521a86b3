"""A call started with Pipecat Cloud's token answer (`POST /start`, `transport: <carrier>`) is a
session of the API key that asked for it: that key reads and stops it by the `sessionId` it was
given, another key cannot see it, and a carrier's own signed stream stays the phone path's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dispatcher.api.auth import Authenticator
from dispatcher.machines.base import Machines
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.sessions.ids import Caller, owned_by
from dispatcher.settings import hash_api_key
from tests.fakes.carriers import CarrierCall
from tests.support.phone_dispatcher import API_KEY, EXOTEL, Phone, phone_dispatcher
from tests.support.processes import pid_alive

ASKER = {"Authorization": f"Bearer {API_KEY}"}
OTHER_KEY = "another-tenant-key-9876543210"
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}


@pytest.fixture
async def dispatcher() -> AsyncIterator[Phone]:
    """Two API keys and the carriers' own proofs; calls' bots are real processes (a bot host
    running a user bot in Pipecat's shape)."""
    async for phone in phone_dispatcher(keyed=True, more_keys=(OTHER_KEY,)):
        yield phone


def machines_of(phone: Phone) -> Machines:
    machines: Machines = phone.app.state.voicefleet.machines
    return machines


async def test_the_key_that_asked_for_a_call_reads_and_stops_its_session_and_another_key_cannot(
    dispatcher: Phone,
) -> None:
    api = dispatcher.api
    answer = await api.post("/start", json={"transport": "exotel", "body": {"plan": "gold"}}, headers=ASKER)
    assert answer.status_code == 201, answer.text
    token, session_id = answer.json()["token"], answer.json()["sessionId"]
    assert (await api.get(f"/sessions/{session_id}", headers=ASKER)).status_code == 404  # no call, no machine yet

    call = CarrierCall("exotel", dispatcher.ws(f"/ws/exotel/{token}"))
    await call.open()
    await call.handshake()
    try:
        assert await call.next_bot_audio(timeout=60)  # the bot answered: the call is up

        status = await api.get(f"/sessions/{session_id}", headers=ASKER)
        assert status.status_code == 200, status.text
        assert status.json()["session_id"] == session_id
        assert status.json()["status"] in ("started", "joined")
        machine = await machines_of(dispatcher).status(session_id)
        assert machine is not None and machine.state.is_active
        bot_pid = int(machine.machine_id.removeprefix("pid-"))  # a local machine is its bot's process

        assert (await api.get(f"/sessions/{session_id}", headers=OTHER)).status_code == 404
        assert (await api.delete(f"/sessions/{session_id}", headers=OTHER)).status_code == 404
        assert (await machines_of(dispatcher).status(session_id)).state.is_active  # type: ignore[union-attr]

        stopped = await api.delete(f"/sessions/{session_id}", headers=ASKER)
        assert stopped.status_code in (202, 204), stopped.text
        assert await call.wait_closed_by_bot(timeout=30) is not None  # the carrier's stream was closed
        ended = await api.get(f"/sessions/{session_id}", headers=ASKER)
        assert ended.status_code == 200 and ended.json()["status"] == "ended", ended.text
        assert not pid_alive(bot_pid)
    finally:
        with contextlib.suppress(ConnectionClosed):  # already closed when the test got that far
            await call.hang_up()


async def test_the_token_names_its_owner_by_the_keys_public_id_never_by_its_owner_key(dispatcher: Phone) -> None:
    answer = await dispatcher.api.post("/start", json={"transport": "twilio"}, headers=ASKER)
    encoded = answer.json()["token"].partition(".")[0]
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))  # anyone who sees the URL reads this
    asker = Authenticator(frozenset({hash_api_key(ASKER["Authorization"].split()[1])})).identify(
        ASKER["Authorization"]
    )
    assert json.loads(raw)["own"] == asker.id
    assert asker.owner_key not in raw and asker.owner_key.hex().encode() not in raw
    assert owned_by(answer.json()["sessionId"], asker.owner_key)


async def test_a_token_whose_key_was_removed_since_opens_no_call(dispatcher: Phone) -> None:
    token = (await dispatcher.api.post("/start", json={"transport": "exotel"}, headers=ASKER)).json()["token"]
    dispatcher.app.state.voicefleet.phone.owners = Authenticator(frozenset({hash_api_key("a-new-key-only")})).by_id
    with pytest.raises(InvalidStatus) as refused:
        async with connect(dispatcher.ws(f"/ws/exotel/{token}"), proxy=None):
            pass
    assert refused.value.response.status_code == 403
    assert await machines_of(dispatcher).list() == []


async def test_a_carriers_own_signed_stream_stays_the_phone_paths_session(dispatcher: Phone) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{EXOTEL[0]}:{EXOTEL[1]}".encode()).decode()}
    call = CarrierCall("exotel", dispatcher.ws("/ws/exotel"), headers=basic)
    await call.open()
    await call.handshake()
    try:
        machines = []
        for _ in range(600):  # the line streams while the session starts
            if machines := await machines_of(dispatcher).list():
                break
            await asyncio.sleep(0.05)
        assert len(machines) == 1, machines
        machine = machines[0]
        assert owned_by(machine.session_id, Caller.named(PHONE_CALLER).owner_key)
        for key in (ASKER, OTHER):
            assert (await dispatcher.api.get(f"/sessions/{machine.session_id}", headers=key)).status_code == 404
    finally:
        await call.hang_up()


async def test_a_call_token_for_a_release_that_is_not_live_is_refused_before_any_call(dispatcher: Phone) -> None:
    # The token carries the pin to the session the call opens: an unknown one is said now, to the
    # start, not to a carrier's stream minutes later.
    answer = await dispatcher.api.post("/start", json={"transport": "twilio", "release": "nope", "eval": True},
                                       headers=ASKER)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "unknown_release"
    live = await dispatcher.api.post("/start", json={"transport": "twilio", "eval": True}, headers=ASKER)
    assert live.status_code == 201, live.text  # an eval's call: no longer refused on a phone transport




async def test_a_call_tokens_recording_wish_lowers_its_sessions_policy(tmp_path: Path) -> None:
    # As a web start's: checked against the key's policy when the token is minted (the same check,
    # `asked_recording`), then carried in the token (signed) to the session the carrier's stream opens.
    env = {"RECORDING": "on", "RECORDING_TRANSCRIPT": "on", "RECORDING_DESTINATION": str(tmp_path)}
    async for phone in phone_dispatcher(keyed=True, phone_env=env):
        unknown = await phone.api.post("/start", json={"transport": "exotel", "recording": {"audio": "loud"}},
                                       headers=ASKER)
        assert unknown.status_code == 422, unknown.text

        answer = await phone.api.post("/start", json={"transport": "exotel", "recording": {"transcript": "off"}},
                                      headers=ASKER)
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["sessionId"]
        call = CarrierCall("exotel", phone.ws(f"/ws/exotel/{answer.json()['token']}"))
        await call.open()
        await call.handshake()
        try:
            assert await call.next_bot_audio(timeout=60)  # the call is up: its session started
            plan = phone.app.state.voicefleet.artifacts.recordings._open[session_id].plan
            assert (plan.audio, plan.transcript) == (True, False), plan  # the transcript lowered, the audio kept
        finally:
            await call.hang_up()


async def test_a_call_tokens_recording_wish_above_its_keys_policy_is_refused(tmp_path: Path) -> None:
    env = {"RECORDING": "on", "RECORDING_TRANSCRIPT": "off", "RECORDING_DESTINATION": str(tmp_path)}
    async for phone in phone_dispatcher(keyed=True, phone_env=env):
        above = await phone.api.post("/start", json={"transport": "twilio", "recording": {"transcript": "on"}},
                                     headers=ASKER)
        assert above.status_code == 422, above.text
        assert above.json()["error"]["code"] == "recording_not_allowed", above.text
        assert "transcript=on (policy: off)" in above.json()["error"]["message"]

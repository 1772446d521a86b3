"""Finding: Exotel's Basic credential (`EXOTEL_API_KEY:EXOTEL_API_TOKEN`, in the applet's
`wss://KEY:TOKEN@…` URL) is a standing admission, spent by nothing: whoever saw it once opened
4 of 4 calls with it, and three streams that sent their two handshake frames and then nothing held
every session slot for 30 s and more (another tenant: `429 at_capacity`). Now the calls carriers
open themselves are one caller with its share of the sessions beside the API keys
(`KEY_SESSION_SHARE`), and a stream that sends nothing for `PHONE_SILENCE_SECONDS` after its
handshake is closed and its session stopped.

A real dispatcher serving on a loopback port, its calls' bots real processes
(tests/support/phone_dispatcher.py), and the carrier's side as Exotel speaks it (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosed

from dispatcher.machines.base import MachineState
from tests.fakes.carriers import CarrierCall
from tests.support.phone_dispatcher import API_KEY, EXOTEL, Phone, phone_dispatcher
from tests.support.waiting import until

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{EXOTEL[0]}:{EXOTEL[1]}".encode()).decode()}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CAP = 4  # MAX_CONCURRENT_SESSIONS: the carriers' calls may hold half of it


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    # The credential's own cap (EXOTEL_MAX_CALLS) as high as the carriers' share: the share is the bound here.
    async for running in phone_dispatcher(keyed=True, max_concurrent_sessions=CAP,
                                          phone_env={"EXOTEL_MAX_CALLS": str(CAP)}):
        yield running


async def launched(phone: Phone, count: int) -> None:
    for _ in range(600):
        if len(phone.launches) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(phone.launches)} calls launched, not {count}")


async def stopped(phone: Phone, session_id: str) -> None:
    machines = phone.app.state.voicefleet.machines

    async def ended() -> bool:
        machine = await machines.status(session_id)
        return machine is None or not machine.state.is_active

    await until(ended, f"session {session_id}'s machine stopped")


async def test_the_standing_credential_holds_the_carriers_share_and_leaves_the_rest(phone: Phone) -> None:
    calls = [CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC) for _ in range(CAP - 1)]
    try:
        for n, call in enumerate(calls[:-1], start=1):
            await call.open()
            await call.handshake()  # a line that streams, as a real call's
            await launched(phone, n)
        past = calls[-1]
        await past.open()
        await past.handshake()
        # Its start is refused (the carriers' share is held): closed, where it would otherwise stream on.
        assert await asyncio.wait_for(past.wait_closed_by_bot(30), 30) == 1011
        assert len(phone.launches) == CAP // 2
        started = await phone.api.post("/start", json={}, headers=AUTH)  # a tenant still finds room
        assert started.status_code == 201, started.text
    finally:
        for call in calls:
            if call.ws is not None and call.ws.close_code is None:
                await call.hang_up()


async def test_a_stream_silent_after_its_handshake_is_closed_and_its_session_stopped(phone: Phone) -> None:
    state = phone.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, silence_seconds=2.0)
    silent = CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC)
    await silent.open()
    await silent.handshake(stream=False)  # `connected` and `start`, then nothing
    assert await silent.wait_closed_by_bot(20) == 1008  # closed by the dispatcher, long before the deadline
    machines = phone.app.state.voicefleet.machines
    for _ in range(200):  # whatever it had started is stopped
        if all(m.state in (MachineState.ENDED, MachineState.FAILED) for m in await machines.list()):
            break
        await asyncio.sleep(0.05)
    assert [m.state for m in await machines.list() if m.state.is_active] == []
    speaking = CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC)  # control: a line that streams
    await speaking.open()
    await speaking.handshake()
    try:
        await launched(phone, len(phone.launches) + 1)
        await asyncio.sleep(3)  # past the silence bound: a streaming line stays open
        assert speaking.ws is not None and speaking.ws.close_code is None
    finally:
        await speaking.hang_up()


async def test_the_standing_credential_is_held_to_a_start_rate() -> None:
    """Calls carriers open themselves are one caller with an API key's start rate: a standing
    credential past it has its calls refused before any start (no session, no timeline)."""
    async for phone in phone_dispatcher(keyed=True, max_concurrent_sessions=CAP,
                                        start_rate_per_key=0.01, start_burst_per_key=1):
        calls = [CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC) for _ in range(2)]
        try:
            first, second = calls
            await first.open()
            await first.handshake()
            await launched(phone, 1)
            await second.open()
            await second.handshake()
            assert await asyncio.wait_for(second.wait_closed_by_bot(30), 30) == 1011
            await asyncio.sleep(0.5)
            assert len(phone.launches) == 1  # the call past the rate started nothing
        finally:
            for call in calls:
                if call.ws is not None and call.ws.close_code is None:
                    await call.hang_up()


async def test_a_stream_that_sends_only_non_media_frames_is_closed_as_silent(phone: Phone) -> None:
    """Only audio is heard: a `mark` every half second (a tiny non-media frame) does not keep a
    stream, and the session it holds, past the silence bound."""
    state = phone.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, silence_seconds=2.0)
    quiet = CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC)
    await quiet.open()
    await quiet.handshake(stream=False)

    async def marks() -> None:
        assert quiet.ws is not None
        with contextlib.suppress(ConnectionClosed):
            while True:
                await quiet.ws.send(json.dumps({"event": "mark", "mark": {"name": "keep"}}))
                await asyncio.sleep(0.5)

    keeping = asyncio.create_task(marks())
    try:
        assert await asyncio.wait_for(quiet.wait_closed_by_bot(20), 20) == 1008
    finally:
        keeping.cancel()


async def test_the_standing_credential_holds_only_its_own_cap_of_the_carriers_share() -> None:
    """EXOTEL_MAX_CALLS (default: half the carriers' share) bounds the calls the standing
    credential holds at once, so it cannot hold every slot the calls carriers open may use."""
    async for phone in phone_dispatcher(keyed=True, max_concurrent_sessions=2 * CAP):  # carriers' share: 4
        calls = [CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC) for _ in range(3)]
        try:
            for n, call in enumerate(calls[:2], start=1):
                await call.open()
                await call.handshake()
                await launched(phone, n)
            past = calls[2]
            await past.open()
            await past.handshake()
            assert await asyncio.wait_for(past.wait_closed_by_bot(30), 30) == 1011
            assert len(phone.launches) == 2
            await calls[0].hang_up()  # an ended call gives its place back, then its machine is stopped
            await stopped(phone, phone.launches[0])
            again = CarrierCall("exotel", phone.ws("/ws/exotel"), headers=BASIC)
            calls.append(again)
            await again.open()
            await again.handshake()
            await launched(phone, 3)
        finally:
            for call in calls:
                if call.ws is not None and call.ws.close_code is None:
                    await call.hang_up()


async def test_the_one_key_beside_the_carriers_may_use_every_slot(phone: Phone) -> None:
    """With one API key only the carriers' standing credentials are held to a share: the key, the
    deployment's own client, may start up to the cap (docs/security.md, "Who is held to them")."""
    answers = [await phone.api.post("/start", json={}, headers=AUTH) for _ in range(CAP + 1)]
    assert [a.status_code for a in answers] == [201] * CAP + [429], [a.text for a in answers]
    assert answers[-1].json()["error"]["code"] == "at_capacity"

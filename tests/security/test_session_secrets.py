"""A cold bot's session secrets reach it over its channel, once, and only the machine launched for it.

A local bot's process environment is its launch values (readable by whoever may read the
process); it holds its session id and channel credential, nothing of the session's values. The
dispatcher sends those after the bot's verified hello, again if the channel drops before the
bot answered, never to another machine, and forgets them once taken; a bot that never dials
has its machine stopped.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, Hello, Reply, encode
from dispatcher.store.secrets_vault import MemoryVault
from tests.security.conftest import WAIT, MakeDispatcher, act_as_launched, dial, stolen_credential
from tests.support.cold_bot import next_assign

TURN = {"TURN_URLS": "turn:127.0.0.1:3478", "TURN_SHARED_SECRET": "t" * 40}
CALLER_DATA = "patient-4711"


def process_environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        entries = [e.partition(b"=") for e in environ.read().split(b"\0") if e]
    return {name.decode(): value.decode(errors="replace") for name, _, value in entries}


async def test_a_local_bots_environment_holds_none_of_its_sessions_values(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STANDIN_RECORD_DIR", str(tmp_path))  # the stand-in records what its channel brought
    d = await make_dispatcher(**TURN)
    started = await d.client.post("/start?wait=started", json={"body": {"caller": CALLER_DATA}})
    assert started.status_code in (200, 201), started.text
    session_id = started.json()["session_id"]
    record = tmp_path / f"{session_id}.json"
    for _ in range(int(WAIT / 0.05)):  # written once the bot took its values over the channel
        if record.exists():
            break
        await asyncio.sleep(0.05)
    taken = json.loads(record.read_text())
    [server] = taken["ice"]["iceServers"]
    assert json.loads(taken["body"]) == {"caller": CALLER_DATA}  # control: the bot has them

    env = process_environment(d.session_pid(session_id))
    assert env["VOICEFLEET_SESSION_ID"] == session_id and CHANNEL_TOKEN_VARIABLE in env  # its launch values
    launch_values = "\0".join(f"{k}={v}" for k, v in env.items())
    assert CALLER_DATA not in launch_values, "the caller's body is in the bot's environment"
    assert server["credential"] not in launch_values, "the bot's TURN password is in its environment"
    assert not {"VOICEFLEET_BODY", "VOICEFLEET_ICE_CONFIG", "DAILY_TOKEN"} & set(env)


async def test_values_lost_with_the_channel_are_sent_again_to_the_same_machine_only_then_forgotten(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "never-ready")  # the launched process never dials: the test is its bot
    d = await make_dispatcher()
    session_id = (await d.client.post("/start", json={"body": {"caller": CALLER_DATA}})).json()["session_id"]
    credential = stolen_credential(d.session_pid(session_id))
    machine = f"local-{session_id}"
    cold = d.state.sessions._cold.delivery
    proof = act_as_launched(d.state.machines, "session", session_id)

    first = await dial(d.channel_url, credential, Hello(machine_id=machine, session_id=session_id, identity=proof()))
    assert first is not None
    lost = await next_assign(first)
    assert lost.params["body"] == {"caller": CALLER_DATA}
    await first.close()  # the channel drops before the bot answered

    other = await dial(d.channel_url, credential, Hello(machine_id="evil", session_id=session_id,
                                                                identity=proof()))
    assert other is None, "another machine with the session's credential was welcomed"

    again = await dial(d.channel_url, credential, Hello(machine_id=machine, session_id=session_id, identity=proof()))
    assert again is not None
    resent = await next_assign(again)
    assert resent.params == lost.params
    assert await cold.waiting(session_id)  # not taken until the bot answers
    await again.send(encode(Reply(resent.id, result={"session_id": session_id, "machine_id": machine})))
    for _ in range(int(WAIT / 0.05)):
        if not await cold.waiting(session_id):
            break
        await asyncio.sleep(0.05)
    assert not await cold.waiting(session_id), "the values were kept after the bot took them"
    await again.close()


async def test_a_bot_that_never_dials_has_its_machine_stopped_and_its_values_dropped(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "never-ready")  # launched, but it never dials the channel
    d = await make_dispatcher()
    d.state.sessions._cold.deadline_seconds = 0.5  # (production: a slow cold start and then some)
    session_id = (await d.client.post("/start", json={"body": {}})).json()["session_id"]
    assert await d.state.sessions._cold.delivery.waiting(session_id)  # control: held for its bot

    async def stopped() -> bool:
        machine = await d.state.machines.status(session_id)
        return machine is not None and not machine.state.is_active

    for _ in range(int(WAIT / 0.05)):
        if await stopped():
            break
        await asyncio.sleep(0.05)
    assert await stopped(), "the machine of a bot that never dialled still runs"
    assert not await d.state.sessions._cold.delivery.waiting(session_id)
    assert 'reason="bot_never_dialled"' in d.state.metrics.render({}).decode()


async def test_values_are_held_no_longer_than_needed_after_a_warm_claim_or_a_stop(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await make_dispatcher(RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="1")
    held = d.state.sessions._cold.delivery
    [idle] = await d.fill(1)
    warm = (await d.client.post("/start", json={"body": {"caller": CALLER_DATA}})).json()["session_id"]
    link = d.state.channels.link_for(warm)
    assert link is not None and link.machine_id == idle  # control: a reserve bot took it with its claim
    assert not await held.waiting(warm), "a warm session's values were kept for a cold bot that never comes"

    monkeypatch.setenv("STANDIN_MODE", "never-ready")  # a cold bot that has not dialled yet
    await d.state.reserve.drain()  # (no reserve bot to take this one)
    cold = (await d.client.post("/start", json={"body": {}})).json()["session_id"]
    assert await held.waiting(cold)  # control: held for its bot
    assert (await d.client.delete(f"/sessions/{cold}")).status_code in (202, 204)
    assert not await held.waiting(cold), "a stopped session's values were kept"


async def test_a_start_whose_values_cannot_be_held_is_refused_before_any_machine_is_launched(
    make_dispatcher: MakeDispatcher,
) -> None:
    d = await make_dispatcher()
    delivery = d.state.sessions._cold.delivery
    delivery._values = MemoryVault(max_kept=0)  # as full as MAX_KEPT waiting sessions would make it

    refused = await d.client.post("/start", json={"body": {"caller": CALLER_DATA}})

    assert refused.status_code == 503 and refused.json()["error"]["code"] == "at_capacity", refused.text
    assert refused.headers.get("Retry-After") is not None
    assert await d.state.machines.list() == [], "a machine was launched for a session whose values had nowhere to wait"
    delivery._values = MemoryVault()  # control: with room again, the same start launches its bot
    started = await d.client.post("/start", json={"body": {"caller": CALLER_DATA}})
    assert started.status_code in (200, 201), started.text
    assert [m.session_id for m in await d.state.machines.list()] == [started.json()["session_id"]]

"""Finding 1: a bot's channel credential is its own machine's, not the deployment's.

The attack: a compromised bot (its code talks to strangers) reads the credential in its own
environment and dials the channel again as an idle reserve bot, to be handed the next caller's
session (body, session id, TURN credentials) and become the caller's media peer.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from botchannel.contract import Request, parse_frame
from dispatcher.machines.base import MachinesError
from tests.security.conftest import WAIT, MakeDispatcher, dial, idle_hello, stolen_credential
from tests.support.processes import wait_gone

RESERVE_OF_ONE = {"RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1"}


async def test_a_compromised_bot_cannot_pose_as_an_idle_bot_and_take_the_next_session(
    make_dispatcher: MakeDispatcher,
) -> None:
    d = await make_dispatcher(**RESERVE_OF_ONE)
    [real] = await d.fill(1)  # control: a bot the dispatcher launched is admitted idle
    credential = stolen_credential(d.idle_pid(real))

    evil = await dial(d.channel_url, credential, idle_hello("evil-1"))

    assert evil is None, "a second idle bot was admitted with another machine's credential"
    began = time.monotonic()
    started = await d.client.post("/start", json={"body": {"caller_secret": "patient-4711"}})
    took = time.monotonic() - began
    assert started.status_code == 201
    # the warm claim is timed within the request that made it (an order, not a threshold)
    metrics = (await d.client.get("/metrics")).text
    [claim_sum] = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("voicefleet_reserve_claim_seconds_sum")]
    assert 0 <= claim_sum <= took
    link = d.state.channels.link_for(started.json()["session_id"])
    assert link is not None and link.machine_id == real  # the launched bot took it, warm


async def test_ten_silent_bots_with_a_stolen_credential_never_stand_between_a_start_and_the_reserve(
    make_dispatcher: MakeDispatcher,
) -> None:
    d = await make_dispatcher(**RESERVE_OF_ONE)
    [first] = await d.fill(1)
    credential = stolen_credential(d.idle_pid(first))
    claimed = await d.client.post("/start", json={"body": {}})  # the compromised bot's own session
    assert claimed.status_code == 201

    fakes = [await dial(d.channel_url, credential, idle_hello(f"flood-{n}")) for n in range(10)]
    [second] = await d.fill(1)  # control: the next launched bot is still admitted
    started = await d.client.post("/start", json={"body": {}})

    assert fakes == [None] * 10, "silent fake bots joined the idle pool"
    assert started.status_code == 201
    link = d.state.channels.link_for(started.json()["session_id"])
    assert link is not None and link.machine_id == second


async def test_a_fake_bot_never_receives_an_assignment_even_when_it_dials_first(
    make_dispatcher: MakeDispatcher,
) -> None:
    """The review's lock-out: the fake is older than every real bot, so today's claim picks it."""
    d = await make_dispatcher(**RESERVE_OF_ONE)
    [first] = await d.fill(1)
    credential = stolen_credential(d.idle_pid(first))
    assert (await d.client.post("/start", json={"body": {}})).status_code == 201

    evil = await dial(d.channel_url, credential, idle_hello("evil-2"))
    got_assign = asyncio.Event()

    async def listen() -> None:
        if evil is not None:
            async for raw in evil:
                frame = parse_frame(raw)
                if isinstance(frame, Request) and frame.method == "assign":
                    got_assign.set()
                    return

    listening = asyncio.create_task(listen())
    await d.fill(1)
    started = await d.client.post("/start", json={"body": {"caller_secret": "x"}})
    listening.cancel()
    assert not got_assign.is_set(), "the fake bot was handed the caller's session"
    assert evil is None
    assert started.status_code == 201


async def test_a_claim_whose_re_tagging_fails_unbinds_the_bot_so_the_cold_bot_serves_the_session(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await make_dispatcher(**RESERVE_OF_ONE)
    [claimed] = await d.fill(1)
    claimed_pid = d.idle_pid(claimed)

    async def provider_refuses(bot_id: str, spec: object) -> object:
        raise MachinesError("rate_limited", "re-tagging throttled")  # e.g. ECS TagResource, Fly metadata

    monkeypatch.setattr(d.state.machines, "adopt", provider_refuses)
    started = await d.client.post("/start?wait=started", json={"body": {}})

    assert started.status_code == 201
    session_id = started.json()["session_id"]
    channels = d.state.channels

    def cold_bot_serves() -> bool:
        link = channels.link_for(session_id)
        return link is not None and link.machine_id == f"local-{session_id}"

    assert await channels.wait_until(cold_bot_serves, WAIT), "the claimed bot still owns the session"
    assert channels.link_for(session_id).machine_id != claimed
    # and the claimed bot, which holds an assignment it will never serve, is stopped
    assert await asyncio.to_thread(wait_gone, [claimed_pid], WAIT) == []

"""The warm reserve over ACI_CELLS, against the fake ARM holding each subscription's own resource group,
groups, buckets, create budget and role assignments: a dispatcher built from its environment runs its
reserve over the cells' subscriptions, takes its refills' tokens from the cells' own create buckets
(`aci:<cell>`, the cold starts' too), sends none to a drained subscription, checks each reserve bot's
group in its own subscription alone, and its bots are claimed by sessions, each once, at whichever
replica they dialled.

The create rate here is 0.01/s with a burst of 3: a bucket's tokens are what the test spent, not what
the clock gave back while it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import CHANNEL_PATH, Hello, Welcome, encode, parse_frame
from dispatcher.api.state import AppState
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.aci.cell_reserve import AciCellWarmMachines
from dispatcher.machines.aci.cells import AciCellMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import LaunchSpec, MachinesError, WarmMachines
from tests.dispatcher.machines.test_aci_cells import OTHER, calls_in, cells_env
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.arm_aci import CLIENT_ID, SUBSCRIPTION, FakeArmAci
from tests.support.cells import (
    accept,
    check_cold_cells,
    coordination_of,
    reserve_replica,
    retire_after_anothers_claim,
    spend,
)
from tests.support.redis_server import RedisServer, redis_server

TOKEN = "z" * 40
IDLE_PREFIX = "vf-idle-"
CHANNEL = "wss://d.example/bots/channel"


@pytest.fixture
def cell_b(fake_aci: FakeArmAci) -> FakeArmAci:
    return fake_aci.add_subscription(OTHER, "vf-cell-b")


def reserve_env(fake: FakeArmAci, idle: int = 1, burst: int = 3) -> dict[str, str]:
    return {**cells_env(fake), "BOT_CHANNEL_URL": CHANNEL, "RESERVE_MIN_IDLE": str(idle), "RESERVE_BUFFER": "0",
            "RESERVE_BURST": "0", "ACI_CREATE_RATE": "0.01", "ACI_CREATE_BURST": str(burst)}


def replica(env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[AppState, int]]:
    """A dispatcher replica built from `env` (its machines too, as `python -m dispatcher` builds them)."""
    return reserve_replica("aci", env, TOKEN)


def running(state: AppState) -> dict[str, int]:
    """Each cell's running count, as `/status` shows it."""
    assert isinstance(state.machines, AciCellMachines)
    return {view.name: view.running for view in state.machines.views()}


def subscriptions(fake: FakeArmAci, cell_b: FakeArmAci) -> dict[str, FakeArmAci]:
    return {"a": fake, "b": cell_b}


def idle_groups(fake: FakeArmAci, cell_b: FakeArmAci) -> dict[str, str]:
    """Reserve bot id → the cell whose subscription holds its group, over both subscriptions."""
    return {name.removeprefix(IDLE_PREFIX): cell for cell, arm in subscriptions(fake, cell_b).items()
            for name in arm.standing() if name.startswith(IDLE_PREFIX)}


def other_replica(env: dict[str, str], state: AppState) -> AciCellWarmMachines:
    """Another replica's provider, sharing `state`'s store and nothing else."""
    return AciCellWarmMachines(AciSettings.from_env(env), coordination_of(state), env)


async def dial(arm: FakeArmAci, state: AppState, port: int, bot_id: str) -> ClientConnection:
    """The reserve group's bot dials the replica as a real one would, with its own credential and image
    from its group's secure values; returns once the replica holds it idle."""
    name = IDLE_PREFIX + bot_id
    arm.set_state(name, "Running")
    values = arm.secure[name]
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {values['BOT_CHANNEL_TOKEN']}"}, proxy=None)
    await ws.send(encode(Hello(machine_id=bot_id, image=values["BOT_IMAGE_DIGEST"], capabilities=("daily",))))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: bot_id in {link.machine_id for link in state.channels.idle()}, 10)
    return ws


async def claimed_bot(fake: FakeArmAci, cell_b: FakeArmAci, state: AppState,
                      port: int) -> tuple[str, str, LaunchSpec, ClientConnection]:
    """The reserve's one bot, refilled, dialled in and claimed by a session: its id, cell, session and channel."""
    assert state.reserve is not None
    await state.reserve.refill()
    [(bot_id, cell)] = idle_groups(fake, cell_b).items()
    ws = await dial(subscriptions(fake, cell_b)[cell], state, port, bot_id)
    accepting = asyncio.create_task(accept(ws))
    s = spec()
    assert (await state.reserve.launch(s)).claimed and await accepting == s.session_id
    return bot_id, cell, s, ws


async def test_aci_mode_with_cells_and_a_channel_holds_the_reserve_over_them(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    await check_cold_cells("aci", AciCellMachines, cells_env(fake_aci))  # no channel: every start cold
    await check_cold_cells("aci", AciCellWarmMachines, {**cells_env(fake_aci), "BOT_CHANNEL_URL": CHANNEL}, warm=True)


async def test_a_start_with_cells_claims_a_warm_bot_in_its_cell(fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    env = reserve_env(fake_aci)
    async with replica(env) as (state, port):
        assert isinstance(state.machines, AciCellMachines) and isinstance(state.machines, WarmMachines)
        bot_id, cell, s, ws = await claimed_bot(fake_aci, cell_b, state, port)
        arm = subscriptions(fake_aci, cell_b)[cell]
        group = arm.groups[IDLE_PREFIX + bot_id]
        assert group["tags"]["voicefleet-session"] == s.session_id and "voicefleet-idle" not in group["tags"]
        assert [n for n in arm.created if s.session_id in n] == []  # warm: no group made for the session
        assert running(state)[cell] == 1  # a session's group now
        other = other_replica(env, state)  # no cache: meets the session's group through the store's record
        try:
            found = await other.status(s.session_id)
            assert found is not None and found.machine_id == IDLE_PREFIX + bot_id
        finally:
            await other.aclose()
        with pytest.raises(MachinesError) as again:  # claimed once: never adopted again
            await state.machines.adopt(bot_id, spec())
        assert again.value.reason in ("reserve_bot_gone", "reserve_bot_taken")
        await ws.close()


async def test_refills_take_the_cells_own_tokens_and_go_where_some_are_left(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    async with replica(reserve_env(fake_aci, idle=2)) as (state, _):
        assert state.reserve is not None
        await spend(state, "a", 3)  # cell a's cold starts took every token
        creates = state.machines.cells.creates  # type: ignore[attr-defined]
        spare_b = (await creates.look(among=("b",))).spare
        await state.reserve.refill()
        groups = idle_groups(fake_aci, cell_b)
        assert len(groups) == spare_b == 2  # as many as b could spare, one token left for its cold starts
        assert set(groups.values()) == {"b"}
        assert (await creates.look(among=("b",))).spare == 0  # taken from b's own bucket
        assert calls_in(fake_aci, "PUT", SUBSCRIPTION) == 0
        assert running(state) == {"a": 0, "b": 2}  # counted in b


@pytest.mark.parametrize(("refuse", "reason"), [
    ("budget", "TooManyRequests"),  # ACI's 100 creates and deletes in 5 minutes, spent: a 429
    ("quota", "ContainerGroupQuotaReached"),
])
async def test_a_refill_the_subscription_refuses_drains_it_and_the_next_goes_elsewhere(
        fake_aci: FakeArmAci, cell_b: FakeArmAci, refuse: str, reason: str) -> None:
    async with replica(reserve_env(fake_aci)) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens than a: a refill would choose a
        if refuse == "budget":
            fake_aci.changes.extend([time.time()] * 100)
        else:
            fake_aci.quota = 0
        await state.reserve.refill()  # refused in a: a is drained, nothing made
        assert isinstance(state.machines, AciCellMachines)
        views = {view.name: view for view in state.machines.views()}
        assert views["a"].drained_until is not None and views["a"].reason == reason
        assert idle_groups(fake_aci, cell_b) == {}
        assert calls_in(fake_aci, "PUT", SUBSCRIPTION) == 1  # not retried where it was refused
        await state.reserve.refill()  # a is still drained: the refill goes to b, none to a
        assert list(idle_groups(fake_aci, cell_b).values()) == ["b"]
        assert calls_in(fake_aci, "PUT", SUBSCRIPTION) == 1
        assert running(state) == {"a": 0, "b": 1}


async def test_a_reserve_bots_group_is_checked_in_its_own_subscription_alone(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """A replica that did not launch a bot finds its cell by asking every subscription: its group there
    admits it. A look-alike of that name run in the other subscription (an admin of that one can) makes
    the bot id no cell's at a replica that has not proved it."""
    env = reserve_env(fake_aci)
    async with replica(env) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens: the refill goes to a (b is listed after it)
        await state.reserve.refill()
        [(bot_id, cell)] = idle_groups(fake_aci, cell_b).items()
        assert cell == "a"
        arm, elsewhere = fake_aci, cell_b
        name = IDLE_PREFIX + bot_id
        arm.set_state(name, "Running")
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        hello = Hello(machine_id=bot_id)
        fresh, late = other_replica(env, state), other_replica(env, state)
        try:
            assert await fresh.identity.refusal(grant, hello) is None
            assert fresh._bot_cells.get(bot_id) == cell  # proved there: a listing never moves it
            elsewhere.groups[name] = copy.deepcopy(arm.groups[name])
            refused = await late.identity.refusal(grant, hello)
            assert refused is not None and "no container group" in refused
            listed = await fresh.idle_machines()
            assert [m.bot_id for m in listed] == [bot_id, bot_id]  # both subscriptions answer with that bot id
            assert fresh._bot_cells.get(bot_id) == cell
            stranger = BotGrant("idle", "rsv-none", int(time.time()) + 60)
            assert "no container group" in str(await fresh.identity.refusal(stranger, Hello(machine_id="rsv-none")))
        finally:
            await fresh.aclose()
            await late.aclose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def test_two_replicas_sharing_the_store_claim_distinct_warm_bots(
        fake_aci: FakeArmAci, cell_b: FakeArmAci, store: RedisServer) -> None:
    env = {**reserve_env(fake_aci, idle=2), **store.env}
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        assert one.reserve is not None and two.reserve is not None
        await one.reserve.refill()
        await two.reserve.refill()
        groups = idle_groups(fake_aci, cell_b)
        assert len(groups) == 2
        (first, first_cell), (second, second_cell) = groups.items()
        arms = subscriptions(fake_aci, cell_b)
        ws_one = await dial(arms[first_cell], one, port_one, first)
        ws_two = await dial(arms[second_cell], two, port_two, second)  # maybe not the replica that launched it
        answers = asyncio.gather(accept(ws_one), accept(ws_two))
        s1, s2 = spec(), spec()
        r1, r2 = await asyncio.gather(one.reserve.launch(s1), two.reserve.launch(s2))
        assert sorted(await answers) == sorted([s1.session_id, s2.session_id])
        assert r1.claimed and r2.claimed
        assert {r1.machine.machine_id, r2.machine.machine_id} == {IDLE_PREFIX + first, IDLE_PREFIX + second}
        for session, name in ((s1, r1.machine.machine_id), (s2, r2.machine.machine_id)):
            for looking in (one, two):  # either replica meets each session's group
                found = await looking.machines.status(session.session_id)
                assert found is not None and found.machine_id == name
        assert one.channels.idle() == [] and two.channels.idle() == []
        await ws_one.close()
        await ws_two.close()


async def test_a_subscription_that_cannot_be_read_takes_only_its_own_warm_bots(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    async with replica(reserve_env(fake_aci, idle=2, burst=4)) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()  # a refill takes the cell with the most spare tokens: one bot in each
        groups = idle_groups(fake_aci, cell_b)
        assert sorted(groups.values()) == ["a", "b"]
        [in_a], [in_b] = ([bot for bot, cell in groups.items() if cell == c] for c in ("a", "b"))
        fake_aci.roles[CLIENT_ID].discard(cell_b.scope)  # the dispatcher's role in b removed: it cannot be read
        machines = state.machines
        assert isinstance(machines, AciCellWarmMachines)
        assert [m.bot_id for m in await machines.idle_machines()] == [in_a]
        assert {v.name: v.unreadable for v in machines.views()}["b"] is not None
        assert machines.in_lost_cell(in_b) and not machines.in_lost_cell(in_a)


async def test_a_claim_that_cannot_retag_in_a_subscription_that_is_down_starts_cold_in_another(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """A claim records the session's cell only once its group carries the session: one refused by a's
    subscription (the dispatcher's role there removed) leaves no record, so the cold start that follows
    goes to b instead of being held to the subscription that is down."""
    async with replica(reserve_env(fake_aci)) as (state, port):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens: the refill goes to a
        await state.reserve.refill()
        [(bot_id, cell)] = idle_groups(fake_aci, cell_b).items()
        assert cell == "a"
        ws = await dial(fake_aci, state, port, bot_id)
        fake_aci.roles[CLIENT_ID].discard(fake_aci.scope)
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        try:
            result = await state.reserve.launch(s)
        finally:
            await accepting
            fake_aci.roles[CLIENT_ID].add(fake_aci.scope)
            await ws.close()
        assert result.created and not result.claimed
        assert f"vf-{s.session_id}" in cell_b.groups


async def test_a_claimed_bot_dialling_again_is_found_through_its_session_at_any_replica(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """Once claimed, a reserve group has traded its idle tag for the session's; its bot dialling again
    names its session, so another replica (no cache) finds its group as the session's, in the cell the
    store records for it. A hello naming another session (another group's, or no session id at all)
    finds nothing; and the re-dial is not noted as a reserve bot's: a retirement by bot id leaves the
    session's group running."""
    env = reserve_env(fake_aci)
    async with replica(env) as (state, port):
        bot_id, cell, s, ws = await claimed_bot(fake_aci, cell_b, state, port)
        cold = spec()
        await state.machines.launch(cold)  # another session's group (named for it), in its own cell
        await ws.close()
        name = IDLE_PREFIX + bot_id
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        other = other_replica(env, state)
        try:
            for wrong in (cold.session_id, "../containerGroups/x", "no-such-session"):
                refused = await other.identity.refusal(grant, Hello(machine_id=bot_id, session_id=wrong))
                assert refused is not None and "no container group" in refused, (wrong, refused)
            # A session id not of the dispatcher's form is never sent to ARM (it would name another path).
            assert not fake_aci.calls_to("GET", "containerGroups/x") and not fake_aci.calls_to("GET", "no-such")
            assert await other.identity.refusal(grant, Hello(machine_id=bot_id, session_id=s.session_id)) is None
            await other.retire(bot_id)  # a stale retirement of the bot, at the replica it re-dialled
            assert name in subscriptions(fake_aci, cell_b)[cell].standing(), "the session's group was deleted"
        finally:
            await other.aclose()

async def warm_in_a_with_a_look_alike_in_b(state: AppState, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> str:
    """A reserve bot refilled in cell a, running, and a copy of its group PUT in cell b by b's admin: its id."""
    assert state.reserve is not None
    await spend(state, "b", 1)  # b has fewer spare tokens: the refill goes to a
    await state.reserve.refill()
    [(bot_id, cell)] = idle_groups(fake_aci, cell_b).items()
    assert cell == "a"
    name = IDLE_PREFIX + bot_id
    fake_aci.set_state(name, "Running")
    cell_b.groups[name] = copy.deepcopy(fake_aci.groups[name])  # b's admin: the same PUT in b
    return bot_id



async def test_a_listing_while_a_cell_is_unreadable_records_no_bot_its_look_alike_is_listed_for(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """A bot's own cell that does not answer a listing cannot show it twice: a look-alike of its group in
    another subscription, listed alone then, is not taken as its cell, so the next look asks every cell."""
    env = reserve_env(fake_aci)
    async with replica(env) as (state, _):
        assert state.reserve is not None
        bot_id = await warm_in_a_with_a_look_alike_in_b(state, fake_aci, cell_b)
        late = other_replica(env, state)
        try:
            fake_aci.roles[CLIENT_ID].discard(fake_aci.scope)  # a cannot be read while late lists the cells
            assert [m.bot_id for m in await late.idle_machines()] == [bot_id]  # b's look-alike alone
            fake_aci.roles[CLIENT_ID].add(fake_aci.scope)
            refused = await late.identity.refusal(BotGrant("idle", bot_id, int(time.time()) + 60),
                                                  Hello(machine_id=bot_id))
            assert refused is not None, "the bot was admitted against cell b's look-alike of its group"
        finally:
            await late.aclose()


async def test_a_replica_that_made_a_bot_retiring_it_after_another_replica_claimed_it_leaves_the_session(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """The replica that refilled a bot knows its cell, so its retirement (the sweep's, on an older listing)
    goes straight to that subscription: there the group, claimed since by another replica's session, stays."""
    env = reserve_env(fake_aci)
    async with replica(env) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, cell)] = idle_groups(fake_aci, cell_b).items()
        arm = subscriptions(fake_aci, cell_b)[cell]
        arm.set_state(IDLE_PREFIX + bot_id, "Running")
        await retire_after_anothers_claim(state.machines, other_replica(env, state), bot_id, claimed := spec())
        group = arm.standing().get(IDLE_PREFIX + bot_id)
        assert group is not None, "the claimed session's group was deleted"
        assert group["tags"]["voicefleet-session"] == claimed.session_id

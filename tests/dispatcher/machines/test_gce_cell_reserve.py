"""The warm reserve over GCE_CELLS, against the fake Compute API holding each project's own instances,
templates and grants: a dispatcher built from its environment runs its reserve over the cells'
projects, takes its refills' tokens from the cells' own insert buckets (the cold starts' too), sends
none to a drained project, checks each reserve bot's instance identity token against the project its
VM is in, and its bots are claimed by sessions, each once, at whichever replica they dialled.

The insert rate here is 0.01/s with a burst of 3: a bucket's tokens are what the test spent, not what
the clock gave back while it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import CHANNEL_PATH, Hello, Welcome, encode, parse_frame
from dispatcher.api.state import AppState
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import LaunchSpec, MachinesError, WarmMachines
from dispatcher.machines.gce.cell_reserve import GceCellWarmMachines
from dispatcher.machines.gce.cells import GceCellMachines
from dispatcher.machines.gce.settings import GceSettings
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_gce_cells import PROJECTS, cells_env, inserts_in
from tests.fakes.gce import CHANNEL_AUDIENCE, FakeGce, rate_limit_body
from tests.support.cells import (
    accept,
    check_a_lost_cell_takes_only_its_own_bots,
    check_cold_cells,
    check_refills_go_where_tokens_are_left,
    claimed_at_two_replicas,
    coordination_of,
    reserve_replica,
    spend,
)
from tests.support.redis_server import RedisServer, redis_server

TOKEN = "g" * 40
IDLE_PREFIX = "vf-idle-"


@pytest.fixture
def fake(fake_gce: FakeGce) -> FakeGce:
    for project in PROJECTS.values():
        fake_gce.add_project(project)
    return fake_gce


def reserve_env(fake: FakeGce, idle: int = 1, burst: int = 3) -> dict[str, str]:
    return {**cells_env(fake), "BOT_CHANNEL_URL": CHANNEL_AUDIENCE, "RESERVE_MIN_IDLE": str(idle),
            "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "GCE_INSERT_RATE": "0.01", "GCE_INSERT_BURST": str(burst)}


def replica(env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[AppState, int]]:
    """A dispatcher replica built from `env` (its machines too, as `python -m dispatcher` builds them)."""
    return reserve_replica("gce", env, TOKEN)


def idle_vms(fake: FakeGce) -> dict[str, str]:
    """Reserve bot id → the cell whose project holds its VM, over every project."""
    return {name.removeprefix(IDLE_PREFIX): cell for cell, project in PROJECTS.items()
            for name in fake.projects[project].instances if name.startswith(IDLE_PREFIX)}


def metadata(vm: dict[str, Any]) -> dict[str, str]:
    return {i["key"]: i["value"] for i in vm["metadata"]["items"]}


async def dial(fake: FakeGce, state: AppState, port: int, bot_id: str, cell: str,
               token_of: str | None = None) -> ClientConnection:
    """The reserve VM's bot dials the replica as a real one would: its own credential from its VM's
    metadata, its VM's identity token (`token_of`: another project's VM of that name, a forgery);
    returns once the replica holds it idle."""
    project = fake.projects[PROJECTS[cell]]
    name = IDLE_PREFIX + bot_id
    project.set_status(name, "RUNNING")
    items = metadata(project.instances[name])
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {items['bot-channel-token']}"}, proxy=None)
    identity = fake.projects[PROJECTS[token_of or cell]].identity_token(name, CHANNEL_AUDIENCE)
    await ws.send(encode(Hello(machine_id=bot_id, image=items["bot-image-digest"], capabilities=("daily",),
                               identity=identity)))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: bot_id in {link.machine_id for link in state.channels.idle()}, 10)
    return ws


async def claimed_bot(fake: FakeGce, state: AppState, port: int) -> tuple[str, str, LaunchSpec, ClientConnection]:
    """The reserve's one bot, refilled, dialled in and claimed by a session: its id, cell, session and channel."""
    assert state.reserve is not None
    await state.reserve.refill()
    [(bot_id, cell)] = idle_vms(fake).items()
    ws = await dial(fake, state, port, bot_id, cell)
    accepting = asyncio.create_task(accept(ws))
    s = spec()
    assert (await state.reserve.launch(s)).claimed and await accepting == s.session_id
    return bot_id, cell, s, ws


async def test_gce_mode_with_cells_and_a_channel_holds_the_reserve_over_them(fake: FakeGce) -> None:
    await check_cold_cells("gce", GceCellMachines, cells_env(fake))  # no channel: every start cold
    await check_cold_cells("gce", GceCellWarmMachines, {**cells_env(fake), "BOT_CHANNEL_URL": CHANNEL_AUDIENCE},
                           warm=True)


async def test_a_start_with_cells_claims_a_warm_bot_in_its_cell(fake: FakeGce) -> None:
    env = reserve_env(fake)
    async with replica(env) as (state, port):
        assert isinstance(state.machines, GceCellMachines) and isinstance(state.machines, WarmMachines)
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        vm = fake.projects[PROJECTS[cell]].instances[IDLE_PREFIX + bot_id]
        assert vm["labels"]["voicefleet-idle"] == bot_id  # inserted from the cell's own template
        assert {v.name: v.running for v in state.machines.views()}[cell] == 1  # the reserve counts in its cell
        ws = await dial(fake, state, port, bot_id, cell)
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        inserts = inserts_in(fake, "a") + inserts_in(fake, "b")
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id
        assert result.created and result.claimed and result.machine.machine_id == IDLE_PREFIX + bot_id
        assert inserts_in(fake, "a") + inserts_in(fake, "b") == inserts  # warm: no insert for the session
        assert fake.projects[PROJECTS[cell]].instances[IDLE_PREFIX + bot_id]["labels"]["voicefleet-session"] \
            == s.session_id
        assert {v.name: v.running for v in state.machines.views()}[cell] == 1  # a session's VM now
        # Another replica with no cache meets the session's VM in its cell, through the store's record.
        other = GceCellWarmMachines(GceSettings.from_env(env), coordination_of(state), max_idle_seconds=900.0,
                                    max_session_seconds=1800)
        try:
            found = await other.status(s.session_id)
            assert found is not None and found.machine_id == IDLE_PREFIX + bot_id
        finally:
            await other.aclose()
        with pytest.raises(MachinesError) as again:  # claimed once: never offered or adopted again
            await state.machines.adopt(bot_id, spec())  # type: ignore[attr-defined]
        assert again.value.reason in ("reserve_bot_gone", "reserve_bot_taken")
        await ws.close()


async def test_a_reserve_bots_token_must_name_the_project_its_vm_is_in(fake: FakeGce) -> None:
    async with replica(reserve_env(fake)) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        other = "b" if cell == "a" else "a"
        name = IDLE_PREFIX + bot_id
        fake.projects[PROJECTS[cell]].set_status(name, "RUNNING")
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        identity = state.machines.identity  # type: ignore[attr-defined]
        own = fake.projects[PROJECTS[cell]].identity_token(name, CHANNEL_AUDIENCE)
        assert await identity.refusal(grant, Hello(machine_id=bot_id, identity=own)) is None
        forged = fake.projects[PROJECTS[other]].identity_token(name, CHANNEL_AUDIENCE)  # that name in the other
        refused = await identity.refusal(grant, Hello(machine_id=bot_id, identity=forged))
        assert refused is not None and PROJECTS[cell] in refused
        stranger = BotGrant("idle", "rsv-none", int(time.time()) + 60)
        assert await identity.refusal(stranger, Hello(machine_id="rsv-none", identity=own)) == (
            "no instance of reserve bot rsv-none in any cell")


async def test_refills_take_the_cells_own_tokens_and_go_where_some_are_left(fake: FakeGce) -> None:
    async with replica(reserve_env(fake, idle=2)) as (state, _):
        await check_refills_go_where_tokens_are_left(state, lambda: list(idle_vms(fake).values()),
                                                     lambda: inserts_in(fake, "a"))


async def test_a_drained_cell_gets_no_refills(fake: FakeGce) -> None:
    async with replica(reserve_env(fake)) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens than a: a refill would choose a
        fake.fail(403, body=rate_limit_body(), method="POST", path_contains=f"/projects/{PROJECTS['a']}/", times=50)
        await state.reserve.refill()  # its insert refused for the rate quota: a is drained, nothing made
        views = {view.name: view for view in state.machines.views()}
        assert views["a"].drained_until is not None and views["a"].reason == "rateLimitExceeded"
        assert idle_vms(fake) == {}
        asked = inserts_in(fake, "a")
        assert asked >= 1
        await state.reserve.refill()  # a is still drained: the refill goes to b, none to a
        assert list(idle_vms(fake).values()) == ["b"]
        assert inserts_in(fake, "a") == asked
        assert {v.name: v.running for v in state.machines.views()} == {"a": 0, "b": 1}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def test_two_replicas_sharing_the_store_claim_distinct_warm_bots(fake: FakeGce, store: RedisServer) -> None:
    env = {**reserve_env(fake, idle=2), **store.env}
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        (first, s1, r1, ws_one), (second, s2, r2, ws_two) = await claimed_at_two_replicas(
            (one, port_one), (two, port_two), lambda: idle_vms(fake),
            lambda state, port, bot_id, cell: dial(fake, state, port, bot_id, cell))
        names = {IDLE_PREFIX + first, IDLE_PREFIX + second}
        assert r1.claimed and r2.claimed and {r1.machine.machine_id, r2.machine.machine_id} == names
        for session, name in ((s1, r1.machine.machine_id), (s2, r2.machine.machine_id)):
            for looking in (one, two):  # either replica meets each session's VM
                found = await looking.machines.status(session.session_id)
                assert found is not None and found.machine_id == name
        claimed = {r1.machine.machine_id: s1.session_id, r2.machine.machine_id: s2.session_id}
        for bot_id in (first, second):  # each claimed once, in the shared store
            for state in (one, two):
                claims = coordination_of(state).claims
                assert await claims.claimed_for(bot_id) == claimed[IDLE_PREFIX + bot_id]
                assert await claims.claim(bot_id, spec().session_id) is False
        assert one.channels.idle() == [] and two.channels.idle() == []  # nothing left to offer another start
        await ws_one.close()
        await ws_two.close()


async def test_a_project_that_cannot_be_read_takes_only_its_own_warm_bots(fake: FakeGce) -> None:
    async with replica(reserve_env(fake, idle=2, burst=4)) as (state, _):
        try:  # the dispatcher's grant in b is gone: it cannot be read
            await check_a_lost_cell_takes_only_its_own_bots(
                state, lambda: idle_vms(fake), lambda: setattr(fake.projects[PROJECTS["b"]], "denied", True))
        finally:
            fake.projects[PROJECTS["b"]].denied = False


async def test_a_claim_goes_to_the_vm_its_token_proved_not_a_look_alike_another_project_lists(
        fake: FakeGce, store: RedisServer) -> None:
    """A reserve bot dials a replica that did not insert it: its token proves its VM in cell a. An
    admin of b's project then runs a VM of the same name, labelled idle with that bot id; the next
    listing finds both. The claim still relabels a's VM, the one whose bot joins the session."""
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (one, _), replica(env) as (two, port_two):
        assert one.reserve is not None and two.reserve is not None
        await spend(one, "b", 1)  # b has fewer spare tokens: the refill goes to a
        await one.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        assert cell == "a"
        name = IDLE_PREFIX + bot_id
        ws = await dial(fake, two, port_two, bot_id, "a")
        fake.projects[PROJECTS["b"]].instances[name] = copy.deepcopy(fake.projects[PROJECTS["a"]].instances[name])
        listed = await two.machines.idle_machines()  # type: ignore[attr-defined]
        assert [m.bot_id for m in listed] == [bot_id, bot_id]  # both projects answer with that bot id
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        result = await two.reserve.launch(s)
        assert await accepting == s.session_id and result.claimed
        assert fake.projects[PROJECTS["a"]].instances[name]["labels"].get("voicefleet-session") == s.session_id
        assert "voicefleet-session" not in fake.projects[PROJECTS["b"]].instances[name]["labels"]
        await ws.close()


async def test_a_claim_that_cannot_relabel_in_a_project_that_is_down_starts_cold_in_another(
        fake: FakeGce) -> None:
    """A claim records the session's cell only once its VM carries the session: one refused by a's
    project (the dispatcher's grant there gone) leaves no record, so the cold start that follows goes
    to b instead of being held to the project that is down."""
    async with replica(reserve_env(fake)) as (state, port):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens: the refill goes to a
        await state.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        assert cell == "a"
        ws = await dial(fake, state, port, bot_id, "a")
        fake.projects[PROJECTS["a"]].denied = True
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        try:
            result = await state.reserve.launch(s)
        finally:
            await accepting
            fake.projects[PROJECTS["a"]].denied = False
            await ws.close()
        assert result.created and not result.claimed
        assert s.session_id in {n.removeprefix("vf-") for n in fake.projects[PROJECTS["b"]].instances}


async def test_a_claimed_bot_dialling_again_is_found_through_its_session_at_any_replica(fake: FakeGce) -> None:
    """Once claimed, a reserve VM has lost its idle label; its bot dialling again names its session, so
    another replica (with no cache) finds its VM as the session's, in the cell the store records for it.
    A hello naming some other session (another VM's, or none a label can carry) finds nothing; and the
    re-dial is not noted as a reserve bot: a retirement by bot id leaves the session's VM running."""
    env = reserve_env(fake)
    async with replica(env) as (state, port):
        bot_id, cell, s, ws = await claimed_bot(fake, state, port)
        cold = spec()
        await state.machines.launch(cold)  # another session's VM (named for it), in its own cell
        await ws.close()
        name = IDLE_PREFIX + bot_id
        project = fake.projects[PROJECTS[cell]]
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        other = GceCellWarmMachines(GceSettings.from_env(env), coordination_of(state), max_idle_seconds=900.0,
                                    max_session_seconds=1800)
        try:
            def hello(session_id: str) -> Hello:
                return Hello(machine_id=bot_id, session_id=session_id,
                             identity=project.identity_token(name, CHANNEL_AUDIENCE))

            for wrong in (cold.session_id, "../instances/x", "no-such-session"):
                refused = await other.identity.refusal(grant, hello(wrong))
                assert refused is not None and "no instance of reserve bot" in refused, (wrong, refused)
            assert await other.identity.refusal(grant, hello(s.session_id)) is None
            await other.retire(bot_id)  # a stale retirement of the bot, at the replica it re-dialled
            assert name in project.instances, "the session's VM was deleted by its bot id"
        finally:
            await other.aclose()


async def test_a_vm_whose_idle_label_names_another_bot_is_not_that_bots(fake: FakeGce) -> None:
    """A replica that did not insert a reserve bot finds its VM by name and idle label: the label's value
    must be the bot id, as the insert wrote it (a VM of that name labelled for another bot is not its)."""
    env = reserve_env(fake)
    async with replica(env) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, cell)] = idle_vms(fake).items()
        name = IDLE_PREFIX + bot_id
        project = fake.projects[PROJECTS[cell]]
        project.set_status(name, "RUNNING")
        project.instances[name]["labels"]["voicefleet-idle"] = "someone-else"
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        hello = Hello(machine_id=bot_id, identity=project.identity_token(name, CHANNEL_AUDIENCE))
        other = GceCellWarmMachines(GceSettings.from_env(env), coordination_of(state), max_idle_seconds=900.0,
                                    max_session_seconds=1800)
        try:
            assert await other.identity.refusal(grant, hello) is not None
            project.instances[name]["labels"]["voicefleet-idle"] = bot_id
            assert await other.identity.refusal(grant, hello) is None  # the same VM, labelled for it
        finally:
            await other.aclose()

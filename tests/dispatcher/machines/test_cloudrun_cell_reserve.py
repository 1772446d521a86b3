"""The warm reserve over CLOUDRUN_CELLS, against the fake Cloud Run Admin API holding each project's own
executions, quota, grants and bots' service account: a dispatcher built from its environment runs its
reserve over the cells' projects, takes its refills' tokens from the cells' own run buckets (the cold
starts' too), sends none to a drained project, checks each reserve bot's token against the bots' account
of the project its execution runs in, and its bots are claimed by sessions, each once, at whichever
replica they dialled, the session's cell recorded in the store.

The run rate here is 0.01/s with a burst of 3: a bucket's tokens are what the test spent, not what the
clock gave back while it ran.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import (
    CHANNEL_PATH,
    CHANNEL_TOKEN_VARIABLE,
    IMAGE_VARIABLE,
    Hello,
    Welcome,
    encode,
    parse_frame,
)
from dispatcher.api.state import AppState
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import LaunchSpec, MachinesError, WarmMachines
from dispatcher.machines.cloudrun.cell_reserve import CloudRunCellWarmMachines
from dispatcher.machines.cloudrun.cells import CloudRunCellMachines
from dispatcher.machines.cloudrun.executions import IDLE_BOT
from dispatcher.machines.cloudrun.settings import CloudRunSettings
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.machines.test_cloudrun import bot_token
from tests.dispatcher.machines.test_cloudrun_cells import ACCOUNTS, PROJECTS, cells_env, runs_in
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import CHANNEL_AUDIENCE, FakeCloudRunJobs
from tests.support.cells import (
    accept,
    check_a_lost_cell_takes_only_its_own_bots,
    check_cold_cells,
    check_refills_go_where_tokens_are_left,
    claimed_at_two_replicas,
    coordination_of,
    homed_in,
    reserve_replica,
    spend,
)
from tests.support.redis_server import RedisServer, redis_server

TOKEN = "r" * 40
LIFETIME = {"max_idle_seconds": 900.0, "max_session_seconds": 1800}


@pytest.fixture
def fake(fake_cloud_run_jobs: FakeCloudRunJobs) -> FakeCloudRunJobs:
    for cell, project in PROJECTS.items():
        fake_cloud_run_jobs.add_project(project, service_account_id=ACCOUNTS[cell])
    return fake_cloud_run_jobs


def reserve_env(fake: FakeCloudRunJobs, idle: int = 1, burst: int = 3, **cell_fields: dict[str, Any]) -> dict[str, str]:
    """`cell_fields`: a cell's own fields (`a={"max_executions": 1}`) beside its project and account."""
    env = cells_env(fake)
    cells = [{**cell, **cell_fields.get(cell["name"], {})} for cell in json.loads(env["CLOUDRUN_CELLS"])]
    return {**env, "CLOUDRUN_CELLS": json.dumps(cells), "BOT_CHANNEL_URL": CHANNEL_AUDIENCE,
            "BOT_CHANNEL_TOKEN": TOKEN, "RESERVE_MIN_IDLE": str(idle), "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
            "CLOUDRUN_RUN_RATE": "0.01", "CLOUDRUN_RUN_BURST": str(burst)}


def replica(env: dict[str, str]) -> Any:
    """A dispatcher replica built from `env` (its machines too, as `python -m dispatcher` builds them)."""
    return reserve_replica("cloudrun", env, TOKEN)


def other_replica(env: dict[str, str], state: AppState) -> CloudRunCellWarmMachines:
    """Another replica's machines on `state`'s store, with nothing cached."""
    return CloudRunCellWarmMachines(CloudRunSettings.from_env(env), coordination_of(state), channel_secret=TOKEN,
                                    **LIFETIME)


def idle_runs(fake: FakeCloudRunJobs) -> dict[str, str]:
    """Reserve bot id → the cell whose project runs its execution, over every project."""
    cell_of = {project: cell for cell, project in PROJECTS.items()}
    return {bot: cell_of[fake.project_of(e)] for e in fake.executions.values()
            if (bot := fake.env_of(e).get(IDLE_BOT))}


def execution_of(fake: FakeCloudRunJobs, bot_id: str, cell: str | None = None) -> str:
    """The short name (a machine id) of bot `bot_id`'s reserve execution, in `cell`'s project if given."""
    [name] = [n for n, e in fake.executions.items() if fake.env_of(e).get(IDLE_BOT) == bot_id
              and (cell is None or fake.project_of(e) == PROJECTS[cell])]
    return name.rsplit("/", 1)[-1]


async def dial(fake: FakeCloudRunJobs, state: AppState, port: int, bot_id: str) -> ClientConnection:
    """The reserve execution's bot dials the replica as a real one would: its credential from its run's env,
    its service account's token from its metadata server; returns once the replica holds it idle."""
    name = execution_of(fake, bot_id)
    fake.set_state(name, "started")
    env = fake.env_of(fake.execution(name))
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {env[CHANNEL_TOKEN_VARIABLE]}"}, proxy=None)
    await ws.send(encode(Hello(machine_id=bot_id, image=env[IMAGE_VARIABLE], capabilities=("daily",),
                               identity=await bot_token(fake, name))))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: bot_id in {link.machine_id for link in state.channels.idle()}, 10)
    return ws


async def started_reserve_bot(fake: FakeCloudRunJobs, state: AppState) -> tuple[str, str, str]:
    """The reserve's one bot, refilled and its execution started: its id, cell and execution's name."""
    assert state.reserve is not None
    await state.reserve.refill()
    [(bot_id, cell)] = idle_runs(fake).items()
    name = execution_of(fake, bot_id)
    fake.set_state(name, "started")
    return bot_id, cell, name


async def claimed_bot(fake: FakeCloudRunJobs, state: AppState, port: int) -> tuple[str, str, LaunchSpec]:
    """The reserve's one bot, refilled, dialled in and claimed by a session: its id, cell and session."""
    assert state.reserve is not None
    await state.reserve.refill()
    [(bot_id, cell)] = idle_runs(fake).items()
    ws = await dial(fake, state, port, bot_id)
    accepting = asyncio.create_task(accept(ws))
    s = spec()
    assert (await state.reserve.launch(s)).claimed and await accepting == s.session_id
    await ws.close()
    return bot_id, cell, s


async def refilled_in_a(fake: FakeCloudRunJobs, state: AppState) -> str:
    """The reserve's one bot, refilled in cell a (b has fewer spare tokens): its id."""
    assert state.reserve is not None
    await spend(state, "b", 1)
    await state.reserve.refill()
    [(bot_id, cell)] = idle_runs(fake).items()
    assert cell == "a"
    return bot_id


def listings(fake: FakeCloudRunJobs) -> int:
    """How many listings of executions the projects have answered."""
    return sum(1 for call in fake.calls_to("GET", "/v2/") if call.path.endswith("/executions"))


def running(state: AppState) -> dict[str, int]:
    return {view.name: view.running for view in state.machines.views()}  # type: ignore[attr-defined]


async def test_cloudrun_mode_with_cells_and_a_channel_holds_the_reserve_over_them(fake: FakeCloudRunJobs) -> None:
    await check_cold_cells("cloudrun", CloudRunCellMachines, cells_env(fake))  # no channel: every start cold
    channel = {"BOT_CHANNEL_URL": CHANNEL_AUDIENCE, "BOT_CHANNEL_TOKEN": TOKEN}
    await check_cold_cells("cloudrun", CloudRunCellWarmMachines, {**cells_env(fake), **channel}, warm=True)


async def test_a_start_with_cells_claims_a_warm_bot_in_its_cell(fake: FakeCloudRunJobs, store: RedisServer) -> None:
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (state, port):
        assert isinstance(state.machines, CloudRunCellMachines) and isinstance(state.machines, WarmMachines)
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, cell)] = idle_runs(fake).items()
        name = execution_of(fake, bot_id)
        assert fake.env_of(fake.execution(name))[IMAGE_VARIABLE] == fake.job_path.removeprefix("/v2")
        assert running(state)[cell] == 1  # the reserve counts in its cell
        ws = await dial(fake, state, port, bot_id)
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        runs = len(fake.calls_to("POST", ":run"))
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id
        assert result.created and result.claimed and result.machine.machine_id == name
        assert len(fake.calls_to("POST", ":run")) == runs  # warm: no run for the session
        assert await coordination_of(state).key_holders.held("cloudrun-cell:" + s.session_id) == cell
        assert running(state)[cell] == 1  # a session's execution now
        other = other_replica(env, state)  # no cache: it meets the session's execution in its cell, through the store
        try:
            found = await other.status(s.session_id)
            assert found is not None and found.machine_id == name and found.session_id == s.session_id
        finally:
            await other.aclose()
        with pytest.raises(MachinesError) as again:  # claimed once: never offered or adopted again
            await state.machines.adopt(bot_id, spec())  # type: ignore[attr-defined]
        assert again.value.reason in ("reserve_bot_gone", "reserve_bot_taken")
        await ws.close()


async def test_a_reserve_bots_token_must_be_of_the_bots_of_the_project_its_execution_runs_in(
        fake: FakeCloudRunJobs) -> None:
    async with replica(reserve_env(fake)) as (state, _):
        bot_id, cell, name = await started_reserve_bot(fake, state)
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        identity = state.machines.identity  # type: ignore[attr-defined]
        assert await identity.refusal(grant, Hello(machine_id=bot_id, identity=await bot_token(fake, name))) is None
        nonce = fake.env_of(fake.execution(name))["VOICEFLEET_EXECUTION_NONCE"]
        other = "b" if cell == "a" else "a"  # the other project's bots, with this execution's nonce
        forged = fake.identity_token(f"{CHANNEL_AUDIENCE}#{nonce}.x", subject=ACCOUNTS[other])
        refused = await identity.refusal(grant, Hello(machine_id=bot_id, identity=forged))
        assert refused is not None and "not the service account of the bots of" in refused
        stranger = BotGrant("idle", "rsv-none", int(time.time()) + 60)
        assert await identity.refusal(stranger, Hello(machine_id="rsv-none", identity=await bot_token(fake, name))) \
            == "no running execution for reserve bot rsv-none"


async def test_a_claimed_bots_idle_hello_is_refused_by_its_claim_before_any_cell_is_asked(
        fake: FakeCloudRunJobs, store: RedisServer) -> None:
    """A reserve bot dials replica two (its cell proved there), then replica one's session claims it. An idle
    hello from it (naming no session) at two, which knows its cell, or at a replica that knows nothing, is
    refused by its claim in the store, before any project is read: it is not left to the one-use record of
    tokens, which does not hold while the store is down."""
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (one, _), replica(env) as (two, port_two):
        bot_id = await refilled_in_a(fake, one)
        name = execution_of(fake, bot_id)
        ws = await dial(fake, two, port_two, bot_id)  # two has proved the bot's cell
        assert (await one.machines.adopt(bot_id, spec())).claimed  # type: ignore[attr-defined]
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        other = other_replica(env, two)
        try:
            for machines in (two.machines, other):
                hello = Hello(machine_id=bot_id, identity=await bot_token(fake, name))
                reads = len(fake.calls_to("GET", "/v2/"))
                assert await machines.identity.refusal(grant, hello) == f"no running execution for reserve bot {bot_id}"
                assert len(fake.calls_to("GET", "/v2/")) == reads, "a project was read for a claimed bot's idle hello"
        finally:
            await other.aclose()
            await ws.close()


async def test_an_unknown_bots_idle_hellos_read_the_projects_once_in_a_while(fake: FakeCloudRunJobs) -> None:
    """A hello for a bot id no project runs (a claimed bot looping fresh tokens, say) asks every project
    once; the same bot's hellos for a short while after are refused without reading any."""
    async with replica(reserve_env(fake)) as (state, _):
        bot_id, _, name = await started_reserve_bot(fake, state)
        identity = state.machines.identity  # type: ignore[attr-defined]
        stranger = BotGrant("idle", "rsv-none", int(time.time()) + 60)
        hello = Hello(machine_id="rsv-none", identity=await bot_token(fake, name))
        reads = listings(fake)
        assert await identity.refusal(stranger, hello) == "no running execution for reserve bot rsv-none"
        assert listings(fake) == reads + len(PROJECTS)  # every project, once
        for _ in range(3):
            hello = Hello(machine_id="rsv-none", identity=await bot_token(fake, name))
            assert await identity.refusal(stranger, hello) == "no running execution for reserve bot rsv-none"
        assert listings(fake) == reads + len(PROJECTS)
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)  # another bot's hello is looked for as ever
        assert await identity.refusal(grant, Hello(machine_id=bot_id, identity=await bot_token(fake, name))) is None


async def test_refills_take_the_cells_own_tokens_and_go_where_some_are_left(fake: FakeCloudRunJobs) -> None:
    async with replica(reserve_env(fake, idle=2)) as (state, _):
        await check_refills_go_where_tokens_are_left(state, lambda: list(idle_runs(fake).values()),
                                                     lambda: runs_in(fake, "a"))


async def test_a_cell_with_room_for_one_execution_gets_no_reserve(fake: FakeCloudRunJobs) -> None:
    """`max_executions` 1: its one slot is kept for a cold start, so every refill goes to the other cell."""
    async with replica(reserve_env(fake, idle=2, a={"max_executions": 1})) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()  # each refill takes the cell with more spare tokens: one each, given room
        assert sorted(idle_runs(fake).values()) == ["b", "b"] and runs_in(fake, "a") == 0


async def test_a_project_answering_429_to_a_reserve_run_is_drained_and_gets_no_refills(
        fake: FakeCloudRunJobs) -> None:
    async with replica(reserve_env(fake)) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens than a: a refill would choose a
        fake.fail(429, method="POST", path_contains=f"/projects/{PROJECTS['a']}/", times=50)  # RATE_LIMIT_EXCEEDED
        await state.reserve.refill()  # its run refused: a is drained, nothing made
        views = {view.name: view for view in state.machines.views()}  # type: ignore[attr-defined]
        assert views["a"].drained_until is not None and views["a"].reason == "RESOURCE_EXHAUSTED"
        assert idle_runs(fake) == {}
        assert runs_in(fake, "a") == 1  # not retried where it throttles
        await state.reserve.refill()  # a is still drained: the refill goes to b, none to a
        assert list(idle_runs(fake).values()) == ["b"]
        assert runs_in(fake, "a") == 1
        assert running(state) == {"a": 0, "b": 1}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def test_two_replicas_sharing_the_store_claim_distinct_warm_bots(
        fake: FakeCloudRunJobs, store: RedisServer) -> None:
    env = {**reserve_env(fake, idle=2), **store.env}
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        (first, s1, r1, ws_one), (second, s2, r2, ws_two) = await claimed_at_two_replicas(
            (one, port_one), (two, port_two), lambda: idle_runs(fake),
            lambda state, port, bot_id, _: dial(fake, state, port, bot_id))
        names = {execution_of(fake, first), execution_of(fake, second)}
        assert r1.claimed and r2.claimed and {r1.machine.machine_id, r2.machine.machine_id} == names
        for session, name in ((s1, r1.machine.machine_id), (s2, r2.machine.machine_id)):
            for looking in (one, two):  # either replica meets each session's execution
                found = await looking.machines.status(session.session_id)
                assert found is not None and found.machine_id == name
        assert one.channels.idle() == [] and two.channels.idle() == []  # nothing left to offer another start
        for bot_id in (first, second):  # claimed once, in the shared store
            with pytest.raises(MachinesError):
                await one.machines.adopt(bot_id, spec())  # type: ignore[attr-defined]
        await ws_one.close()
        await ws_two.close()


async def test_a_project_that_cannot_be_read_takes_only_its_own_warm_bots(fake: FakeCloudRunJobs) -> None:
    def lose_b() -> None:  # the dispatcher may no longer read b's executions
        fake.projects[PROJECTS["b"]].permissions -= {"run.executions.list", "run.executions.get"}

    async with replica(reserve_env(fake, idle=2, burst=4)) as (state, _):
        await check_a_lost_cell_takes_only_its_own_bots(state, lambda: idle_runs(fake), lose_b)


def look_alike(fake: FakeCloudRunJobs, name: str, cell: str) -> str:
    """A copy of execution `name` run in `cell`'s project under the same short name (an admin there ran one
    with the same env; names are project-scoped, so both projects hold an execution so named): its
    resource name."""
    copied = copy.deepcopy(fake.execution(name))
    short = name.rsplit("/", 1)[-1]
    copied["name"] = full = f"projects/{PROJECTS[cell]}/locations/{fake.region}/jobs/{fake.job}/executions/{short}"
    fake.executions[full] = copied
    return full


async def test_a_claim_goes_to_the_execution_its_token_proved_not_a_look_alike_another_project_runs(
        fake: FakeCloudRunJobs, store: RedisServer) -> None:
    """A reserve bot dials a replica that did not run it: its token proves its execution in cell a. An admin
    of b's project then runs an execution with the same env (its bot id) and the same name; the next listing
    finds both. The claim still goes to a's, and b's look-alike is never taken for the session's execution."""
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (one, _), replica(env) as (two, port_two):
        assert two.reserve is not None
        bot_id = await refilled_in_a(fake, one)
        ws = await dial(fake, two, port_two, bot_id)
        name = execution_of(fake, bot_id, "a")
        look_alike(fake, execution_of(fake, bot_id, "a"), "b")
        assert execution_of(fake, bot_id, "b") == name  # the same name, in b's project
        listed = await two.machines.idle_machines()  # type: ignore[attr-defined]
        assert [m.bot_id for m in listed] == [bot_id, bot_id]  # both projects answer with that bot id
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        result = await two.reserve.launch(s)
        assert await accepting == s.session_id and result.claimed and result.machine.machine_id == name
        for looking in (one, two):  # b's look-alike is listed as no session's (the claim is a's), nor idle
            listed = await looking.machines.list()  # type: ignore[attr-defined]
            assert [(m.session_id, m.machine_id) for m in listed if m.machine_id == name] == [(s.session_id, name)]
            assert await looking.machines.idle_machines() == []  # type: ignore[attr-defined]
        found = await one.machines.find(s.session_id)  # type: ignore[attr-defined]
        assert found is not None and found[0] == "a" and found[1].machine_id == name
        await ws.close()


async def test_a_claimed_bot_dialling_again_is_found_through_its_session_at_any_replica(
        fake: FakeCloudRunJobs, store: RedisServer) -> None:
    """Once claimed, a reserve bot dialling again names its session: another replica (no cache) finds its
    execution as the session's, in the cell the store records for it. A hello naming another session (a
    cold one's, or none) finds nothing, and a stale retirement by bot id leaves the session's execution."""
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (state, port):
        bot_id, _, s = await claimed_bot(fake, state, port)
        cold = spec()
        await state.machines.launch(cold)  # another session's execution, in its own cell
        name = execution_of(fake, bot_id)
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        other = other_replica(env, state)
        try:
            async def hello(session_id: str) -> Hello:
                return Hello(machine_id=bot_id, session_id=session_id, identity=await bot_token(fake, name))

            for wrong in (cold.session_id, "no-such-session"):
                refused = await other.identity.refusal(grant, await hello(wrong))
                assert refused == f"no running execution for reserve bot {bot_id}", (wrong, refused)
            assert await other.identity.refusal(grant, await hello(s.session_id)) is None
            await other.retire(bot_id)  # a stale retirement of the bot, at the replica it re-dialled
            assert not fake.execution(name).get("completionTime"), "the session's execution was cancelled"
        finally:
            await other.aclose()


async def test_a_claim_that_fails_lets_its_cell_record_go_and_starts_cold_at_home(fake: FakeCloudRunJobs) -> None:
    """A claim records the session's cell before it claims the bot: one that then fails (the bot's execution
    ended meanwhile) lets the record go, so the cold start that follows goes to the session's home cell,
    not the bot's."""
    async with replica(reserve_env(fake)) as (state, port):
        bot_id = await refilled_in_a(fake, state)
        ws = await dial(fake, state, port, bot_id)
        fake.set_state(execution_of(fake, bot_id), "cancelled")  # its execution ends before the claim
        accepting = asyncio.create_task(accept(ws))
        [session] = homed_in(state.machines, "b")
        try:
            result = await state.reserve.launch(spec(session))
        finally:
            await accepting
            await ws.close()
        assert result.created and not result.claimed
        assert [fake.project_of(e) for e in fake.of_session(session)] == [PROJECTS["b"]]
        assert await coordination_of(state).key_holders.held("cloudrun-cell:" + session) == "b"


@pytest.mark.parametrize("home", ["a", "b"])
async def test_a_claim_whose_bot_record_failed_keeps_its_cell_and_its_cold_start_runs_its_own_there(
        fake: FakeCloudRunJobs, monkeypatch: pytest.MonkeyPatch, home: str) -> None:
    """The claim's session record was written, its bot's was not (the store stopped answering): the claim
    fails and its execution is cancelled. The bot's claim was the session's by then, so the session's cell
    record (a, the bot's) stays, whatever its home; its cold start goes there and runs its own execution,
    never handed the cancelled one as "existing"."""
    async with replica(reserve_env(fake)) as (state, _):
        bot_id = await refilled_in_a(fake, state)
        name = execution_of(fake, bot_id)
        fake.set_state(name, "started")
        member = state.machines._reserve_in("a")  # type: ignore[attr-defined]
        put = member._records.put
        writes: list[str] = []

        async def second_write_fails(key: str, values: dict[str, Any], ttl: float) -> None:
            writes.append(key)
            if len(writes) > 1:
                raise StoreUnavailable("the store did not answer")
            await put(key, values, ttl)

        monkeypatch.setattr(member._records, "put", second_write_fails)
        [session] = homed_in(state.machines, home)
        with pytest.raises(StoreUnavailable):
            await state.machines.adopt(bot_id, spec(session))  # type: ignore[attr-defined]
        assert fake.execution(name).get("cancelledCount") == 1
        assert await coordination_of(state).key_holders.held("cloudrun-cell:" + session) == "a"
        launched = await state.machines.launch(spec(session))
        assert launched.created and launched.machine.machine_id != name
        assert [fake.project_of(e) for e in fake.of_session(session)] == [PROJECTS["a"]]


async def test_a_claim_whose_records_are_written_stands_though_the_store_then_fails_a_read(
        fake: FakeCloudRunJobs, store: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both claim records are written, then the store fails a read: the execution runs as the session's,
    so the claim succeeds and the session's cell record stays: another replica's `status` finds it."""
    env = {**reserve_env(fake), **store.env}
    async with replica(env) as (state, _):
        bot_id = await refilled_in_a(fake, state)
        name = execution_of(fake, bot_id)
        fake.set_state(name, "started")
        records = state.machines._reserve_in("a")._records  # type: ignore[attr-defined]
        get = records.get

        async def store_down(*args: object) -> None:
            raise StoreUnavailable("the store did not answer")

        monkeypatch.setattr(records, "get", store_down)
        s = spec()
        result = await state.machines.adopt(bot_id, s)  # type: ignore[attr-defined]
        assert result.claimed and result.machine.machine_id == name and result.machine.session_id == s.session_id
        monkeypatch.setattr(records, "get", get)
        assert await coordination_of(state).key_holders.held("cloudrun-cell:" + s.session_id) == "a"
        other = other_replica(env, state)
        try:
            found = await other.status(s.session_id)
            assert found is not None and found.machine_id == name and found.session_id == s.session_id
        finally:
            await other.aclose()

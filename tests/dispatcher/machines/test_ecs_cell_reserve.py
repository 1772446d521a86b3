"""The warm reserve over ECS_CELLS, end to end against moto (server mode, behind the proxy that checks
every signature and account: tests/fakes/ecs_cells.py): a dispatcher built from its environment runs
its reserve over the cells' accounts, takes its refills' tokens from the cells' own launch buckets
(the cold starts' too), sends none to a drained cell, and its bots, which dial in with their task
role's identity, are claimed by sessions, each once, at whichever replica they dialled.

RunTask's rate here is 0.01/s with a burst of 3: a bucket's tokens are what the test spent, not what
the clock gave back while it ran.
"""

# ruff: noqa: F811 - the tests take the cells' fixtures, imported from test_ecs_cells, as arguments

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import CHANNEL_PATH, Hello, Welcome, encode, parse_frame
from dispatcher.api.state import AppState
from dispatcher.machines.base import MachinesError, WarmMachines
from dispatcher.machines.ecs.cell_reserve import EcsCellWarmMachines
from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.settings import EcsSettings
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_ecs_cells import (  # noqa: F401 - the cells' fixtures
    ACCOUNTS,
    account_of_task,
    accounts,
    cells_env,
    proxy,
)
from tests.fakes.ecs import CHANNEL_AUDIENCE, action_of
from tests.fakes.ecs_cells import CellsProxy, account_of
from tests.support.cells import accept, coordination_of, reserve_replica, spend
from tests.support.redis_server import RedisServer, redis_server

TOKEN = "f" * 40


def reserve_env(proxy: CellsProxy, accounts: dict[str, dict[str, Any]], idle: int = 1,
                burst: int = 3) -> dict[str, str]:
    return {**cells_env(proxy, accounts), "BOT_CHANNEL_URL": CHANNEL_AUDIENCE, "RESERVE_MIN_IDLE": str(idle),
            "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "ECS_RUN_TASK_RATE": "0.01",
            "ECS_RUN_TASK_BURST": str(burst)}


def replica(env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[tuple[AppState, int]]:
    """A dispatcher replica built from `env` (its machines too, as `python -m dispatcher` builds them)."""
    return reserve_replica("ecs", env, TOKEN)


def idle_tasks(state: AppState) -> dict[str, str]:
    """Reserve bot id → its task ARN, for the bots this replica launched."""
    warm = state.machines._warm  # type: ignore[attr-defined]
    return {bot_id: arn for member in warm.values() for bot_id in list(member._idle_arns)
            if (arn := member._idle_arns.get(bot_id)) is not None}


def cell_of(arn: str) -> str:
    return next(cell for cell, account in ACCOUNTS.items() if account == account_of_task(arn))


def run_tasks_in(proxy: CellsProxy, account: str) -> int:
    """RunTask calls that reached the proxy with `account`'s keys (throttled ones too)."""
    return sum(1 for call in proxy.calls
               if action_of(call.headers) == "RunTask" and account_of(call.headers) == account)


async def dial(proxy: CellsProxy, state: AppState, port: int, bot_id: str, arn: str) -> ClientConnection:
    """The reserve task's bot dials the replica as a real one would: its own credential from its
    task's overrides, its task role's identity; returns once the replica holds it idle."""
    [run] = [r for r in proxy.requests_for("RunTask") if {"key": "voicefleet:idle", "value": bot_id} in r["tags"]]
    [override] = run["overrides"]["containerOverrides"]
    environment = {e["name"]: e["value"] for e in override["environment"]}
    ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                       additional_headers={"Authorization": f"Bearer {environment['BOT_CHANNEL_TOKEN']}"}, proxy=None)
    identity = await proxy.task_identity(arn)
    await ws.send(encode(Hello(machine_id=bot_id, image=environment["BOT_IMAGE_DIGEST"], capabilities=("daily",),
                               identity=identity)))
    assert isinstance(parse_frame(await ws.recv()), Welcome)
    assert await state.channels.wait_until(lambda: bot_id in {link.machine_id for link in state.channels.idle()}, 10)
    return ws


async def test_a_start_with_cells_claims_a_warm_bot_in_its_cell(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    env = reserve_env(proxy, accounts)
    async with replica(env) as (state, port):
        assert isinstance(state.machines, EcsCellMachines) and isinstance(state.machines, WarmMachines)
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, arn)] = idle_tasks(state).items()
        cell = cell_of(arn)
        assert {v.name: v.running for v in state.machines.views()}[cell] == 1  # the reserve counts in its cell
        ws = await dial(proxy, state, port, bot_id, arn)
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        runs = len(proxy.requests_for("RunTask"))
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id
        assert result.created and result.claimed and result.machine.machine_id == arn
        assert len(proxy.requests_for("RunTask")) == runs  # warm: no RunTask for the session
        assert {v.name: v.running for v in state.machines.views()}[cell] == 1  # a session's task now
        # Another replica with no cache meets the session's task in its cell, through the store's record.
        other = EcsCellWarmMachines(EcsSettings.from_env(env), coordination_of(state), channel_url=CHANNEL_AUDIENCE)
        try:
            found = await other.status(s.session_id)
            assert found is not None and found.machine_id == arn
        finally:
            await other.aclose()
        with pytest.raises(MachinesError) as again:  # claimed once: never offered or adopted again
            await state.machines.adopt(bot_id, spec())  # type: ignore[attr-defined]
        assert again.value.reason == "reserve_bot_gone"
        await ws.close()


async def test_refills_take_the_cells_own_tokens_and_go_where_some_are_left(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    async with replica(reserve_env(proxy, accounts, idle=2)) as (state, _):
        assert state.reserve is not None
        await spend(state, "a", 3)  # cell a's cold starts took every token
        creates = state.machines.cells.creates  # type: ignore[attr-defined]
        spare_b = (await creates.look(among=("b",))).spare
        await state.reserve.refill()
        tasks = idle_tasks(state)
        assert len(tasks) == spare_b == 2  # as many as b could spare, one token left for its cold starts
        assert {account_of_task(arn) for arn in tasks.values()} == {ACCOUNTS["b"]}
        assert (await creates.look(among=("b",))).spare == 0  # taken from b's own bucket
        assert run_tasks_in(proxy, ACCOUNTS["a"]) == 0


async def test_a_drained_cell_gets_no_refills(proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    async with replica(reserve_env(proxy, accounts)) as (state, _):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens than a: a refill would choose a
        proxy.throttle_account(ACCOUNTS["a"])
        await state.reserve.refill()  # its RunTask throttled: a is drained, nothing launched
        views = {view.name: view for view in state.machines.views()}
        assert views["a"].drained_until is not None and "ThrottlingException" in str(views["a"].reason)
        assert idle_tasks(state) == {} and run_tasks_in(proxy, ACCOUNTS["a"]) == 1
        await state.reserve.refill()  # a is still drained: the refill goes to b, none to a
        assert [account_of_task(arn) for arn in idle_tasks(state).values()] == [ACCOUNTS["b"]]
        assert run_tasks_in(proxy, ACCOUNTS["a"]) == 1
        assert {v.name: v.running for v in state.machines.views()} == {"a": 0, "b": 1}


async def test_a_claim_for_a_session_launched_in_another_cell_stops_its_bot_and_keeps_the_record(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """A session whose launch went to cell b first (a replay, at any replica) cannot take a bot of
    cell a: its machine may be in b. The claim is refused before any re-tag, the record stays b's,
    the start goes on in b, and the bot that accepted the assignment has its task stopped."""
    async with replica(reserve_env(proxy, accounts)) as (state, port):
        assert state.reserve is not None
        await spend(state, "b", 1)  # b has fewer spare tokens: the refill goes to a
        await state.reserve.refill()
        [(bot_id, arn)] = idle_tasks(state).items()
        assert cell_of(arn) == "a"
        ws = await dial(proxy, state, port, bot_id, arn)
        s = spec()
        assert await state.machines._holder(s, "b") == ("b", False)  # type: ignore[attr-defined]
        accepting = asyncio.create_task(accept(ws))
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id
        assert result.created and not result.claimed and cell_of(result.machine.machine_id) == "b"
        assert not [r for r in proxy.requests_for("TagResource") if r.get("resourceArn") == arn]  # never re-tagged
        await state.reserve._retirements.aclose()  # its background retirement done
        [task] = await state.machines._warm["a"]._describe([arn])  # type: ignore[attr-defined]
        assert task.get("desiredStatus") == "STOPPED"
        await ws.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def test_two_replicas_sharing_the_store_claim_distinct_warm_bots(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], store: RedisServer) -> None:
    env = {**reserve_env(proxy, accounts, idle=2), **store.env}
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        assert one.reserve is not None and two.reserve is not None
        await one.reserve.refill()  # whichever replica plans launches the deployment's two bots
        await two.reserve.refill()
        tasks = {**idle_tasks(one), **idle_tasks(two)}
        assert len(tasks) == 2
        (first, first_arn), (second, second_arn) = tasks.items()
        # Each bot dials a replica of its own (a load balancer's choice): the second's replica never
        # launched it, and finds its cell by the cells' reserve tasks.
        ws_one = await dial(proxy, one, port_one, first, first_arn)
        assert two.machines._bot_cells.get(second) is None  # type: ignore[attr-defined]
        ws_two = await dial(proxy, two, port_two, second, second_arn)
        # Its hello proved its task in its account: the claim there goes to that cell without a search.
        assert two.machines._bot_cells.get(second) == cell_of(second_arn)  # type: ignore[attr-defined]
        answers = asyncio.gather(accept(ws_one), accept(ws_two))
        s1, s2 = spec(), spec()
        r1, r2 = await asyncio.gather(one.reserve.launch(s1), two.reserve.launch(s2))
        assert sorted(await answers) == sorted([s1.session_id, s2.session_id])
        assert r1.claimed and r2.claimed and {r1.machine.machine_id, r2.machine.machine_id} == {first_arn, second_arn}
        for session, arn in ((s1, r1.machine.machine_id), (s2, r2.machine.machine_id)):
            for looking in (one, two):  # either replica meets each session's task
                found = await looking.machines.status(session.session_id)
                assert found is not None and found.machine_id == arn
        claimed = {r1.machine.machine_id: s1.session_id, r2.machine.machine_id: s2.session_id}
        for bot_id, arn in ((first, first_arn), (second, second_arn)):  # each claimed once, in the shared store
            for state in (one, two):
                claims = coordination_of(state).claims
                assert await claims.claimed_for(bot_id) == claimed[arn]
                assert await claims.claim(bot_id, spec().session_id) is False
        assert one.channels.idle() == [] and two.channels.idle() == []  # nothing left to offer another start
        await ws_one.close()
        await ws_two.close()


async def test_a_cell_that_cannot_be_read_takes_only_its_own_warm_bots(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    async with replica(reserve_env(proxy, accounts, idle=2, burst=4)) as (state, _):
        reserve = state.reserve
        assert reserve is not None
        await reserve.refill()  # a refill takes the cell with the most spare tokens: one bot in each
        await spend(state, "a", 1)  # b has more spare tokens left than a: a refill would choose b
        tasks = idle_tasks(state)
        assert sorted(cell_of(arn) for arn in tasks.values()) == ["a", "b"]
        [in_b] = [bot_id for bot_id, arn in tasks.items() if cell_of(arn) == "b"]
        proxy.unreadable_accounts.add(ACCOUNTS["b"])  # b's role may no longer read its tasks
        # Both bots are late for their hello (neither dialled in: their tasks boot slowly), not yet stuck.
        cold = reserve.planning.sizer.cold.mean
        started = reserve._clock()
        reserve._clock = lambda: started + cold * 2  # type: ignore[method-assign]
        await reserve.refill()
        views = {view.name: view for view in state.machines.views()}
        assert views["b"].unreadable is not None and views["a"].unreadable is None
        # b's bot is forgotten, not a failure of the image (no backoff), and its replacement goes to a.
        assert reserve.failed_bots.worst().in_a_row == 0
        after = idle_tasks(state)
        new = {bot_id: arn for bot_id, arn in after.items() if bot_id not in tasks}
        assert [cell_of(arn) for arn in new.values()] == ["a"]
        assert run_tasks_in(proxy, ACCOUNTS["b"]) == 1
        assert in_b not in reserve._warming._launched  # type: ignore[attr-defined]
        proxy.unreadable_accounts.clear()

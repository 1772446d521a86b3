"""Hostile review of the warm reserve over ECS cells (dispatcher/machines/ecs/cell_reserve.py,
cell_refills.py): each test is a finding, strict-xfail until the product is fixed. Same harness as
test_ecs_cell_reserve.py: moto in server mode behind the proxy that checks every signature and
account (tests/fakes/ecs_cells.py), a dispatcher replica built from its environment.
"""

# ruff: noqa: F811 - the tests take the cells' fixtures, imported from test_ecs_cells, as arguments

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from websockets.asyncio.client import ClientConnection

from dispatcher.api.state import AppState
from dispatcher.machines.base import MachinesError
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_ecs_cell_reserve import (  # noqa: F401 - the store fixture
    accept,
    cell_of,
    dial,
    idle_tasks,
    replica,
    reserve_env,
    spend,
    store,
)
from tests.dispatcher.machines.test_ecs_cells import (  # noqa: F401 - the cells' fixtures
    ACCOUNTS,
    EXTERNAL_ID,
    ROLES,
    accounts,
    proxy,
)
from tests.fakes.ecs import action_of
from tests.fakes.ecs_cells import CellsProxy, account_of
from tests.fakes.server import serve
from tests.support.redis_server import RedisServer
from tests.support.waiting import until

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


async def idle_bot_in_a(proxy: CellsProxy, state: AppState, port: int) -> tuple[str, str, ClientConnection]:
    """One reserve bot, launched in cell a (b's spare tokens spent first, so the refill goes to a),
    dialled in and idle (its hello proved its task in account a): its id, its task ARN, its channel."""
    assert state.reserve is not None
    await spend(state, "b", 1)
    await state.reserve.refill()
    [(bot_id, arn)] = idle_tasks(state).items()
    assert cell_of(arn) == "a"
    return bot_id, arn, await dial(proxy, state, port, bot_id, arn)


async def test_a_claim_retags_the_task_that_proved_the_hello_not_one_another_account_lists(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """identity.py refuses a hello vouched for by another account ("an admin of one account cannot
    vouch for a task of another"), but `idle_machines` then overwrites the bot's proved cell with
    whichever cell last lists an idle task tagged with its id, and `adopt` re-tags the idle task it
    finds there. Whoever can RunTask in cell b (its admins, its CI) and has seen a bot id of cell a
    (the dispatcher's log lines name them; the ids are random, so it must have seen one) makes one
    task with startedBy vf-reserve and `voicefleet:idle` = that id:
    the next claim of that bot records the session in cell b and tags b's task with it. The bot in a
    serves the call; status and stop go to b's task (DELETE never stops the real bot, whose task stays
    tagged idle in a and is never counted as the session's)."""
    async with replica(reserve_env(proxy, accounts)) as (state, port):
        assert state.reserve is not None
        bot_id, arn, ws = await idle_bot_in_a(proxy, state, port)
        # Cell b's own admin runs a look-alike reserve task under the same bot id (the dispatcher's
        # RunTask form, as `aws ecs run-task --started-by vf-reserve --tags ...` would send it).
        other = state.machines._warm["b"]  # type: ignore[attr-defined]
        await other.run_idle(bot_id, None)
        planted = other._idle_arns.pop(bot_id)  # not the dispatcher's launch: nothing here knows it
        await state.machines.idle_machines()  # the reserve's sweep and warming list every tick
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id  # the real bot, in a, took the session
        assert result.machine.machine_id != planted
        assert result.machine.machine_id == arn  # the session's task is the one that proved the hello
        await ws.close()


async def test_a_claim_that_cannot_retag_in_a_cell_that_is_down_starts_cold_in_another(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """docs/operations.md#cells: "a claim that cannot re-tag one there retires it and starts cold".
    `EcsCellWarmMachines.adopt` writes `home:ecs-cell:<session>` = the bot's cell before TagResource;
    when TagResource is refused (nothing tagged), the record stays, the cold launch finds it
    (`earlier`, so `moves` is False) and is pinned there: it never goes to the healthy cell."""
    async with replica(reserve_env(proxy, accounts)) as (state, port):
        assert state.reserve is not None
        bot_id, arn, ws = await idle_bot_in_a(proxy, state, port)
        # Cell a goes down for the dispatcher (its role's permissions taken away, an SCP, an outage).
        proxy.fail_action("TagResource", error="AccessDeniedException", times=5)
        proxy.denied_accounts.add(ACCOUNTS["a"])
        proxy.unreadable_accounts.add(ACCOUNTS["a"])
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        try:
            result = await state.reserve.launch(s)
        except MachinesError as exc:  # today: ecs_unauthorized from cell a, b never tried
            pytest.fail(f"the start failed in the cell that is down: {exc.reason}: {exc}")
        finally:
            await accepting
            proxy.denied_accounts.clear()
            proxy.unreadable_accounts.clear()
            proxy.action_failures.clear()
            await ws.close()
        assert result.created and not result.claimed
        assert cell_of(result.machine.machine_id) == "b"


async def test_refills_leave_room_for_a_cold_start(proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """Refills leave one launch token for a cold start in each cell (creates.py), but not one slot of
    `max_tasks`: `Cells.refillable` takes any cell with `running < room`. With max_tasks 2 and a
    reserve of 4, the refills fill both cells; a start that no bot can serve yet (they are warming,
    or of another transport or release) is then refused 'every open cell is full', though each
    cell still has the token kept for it."""
    env = reserve_env(proxy, accounts, idle=4)
    env["ECS_CELLS"] = json.dumps([{**cell, "max_tasks": 2} for cell in json.loads(env["ECS_CELLS"])])
    async with replica(env) as (state, _):
        assert state.reserve is not None
        await state.reserve.refill()
        launched = sorted(cell_of(arn) for arn in idle_tasks(state).values())
        assert launched  # the reserve got some of the room
        try:
            result = await state.reserve.launch(spec())
        except MachinesError as exc:
            pytest.fail(f"cold start refused after refills ({launched}): {exc.reason}: {exc}")
        assert result.created and not result.claimed


def _cell_role_actions() -> set[str]:
    """The ECS actions docs/operations.md grants a cell's role ("Its permissions are ...")."""
    text = OPERATIONS.read_text()
    start = text.index("Its permissions are the dispatcher's ECS ones")
    paragraph = text[start:text.index("Then list the cells:", start)]
    return set(re.findall(r"ecs:([A-Za-z]+)`", paragraph)) - {"cluster", "CreateAction"}


async def test_the_documented_cell_role_allows_every_call_the_reserve_makes(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """With the reserve over cells, the dispatcher's calls in a cell's account now include a claim's
    TagResource (no `ecs:CreateAction`: the task exists) and UntagResource. docs/operations.md's
    cell role grants TagResource only with `ecs:CreateAction` = RunTask and no UntagResource, so an
    operator following it gets AccessDenied on every claim: claim.py retires the bot that already
    accepted the session and launches cold (double cost, no warm start ever). The AWS stack's own
    `ClaimReserveBot` statement (stacks/aws/bot_runtime.py) is what the cells' role needs too."""
    async with replica(reserve_env(proxy, accounts)) as (state, port):
        assert state.reserve is not None
        await state.reserve.refill()
        [(bot_id, arn)] = idle_tasks(state).items()
        ws = await dial(proxy, state, port, bot_id, arn)
        accepting = asyncio.create_task(accept(ws))
        result = await state.reserve.launch(spec())
        await accepting
        assert result.claimed
        called = {action_of(call.headers) for call in proxy.calls if account_of(call.headers) in ACCOUNTS.values()}
        # Tagging a running task is a separate grant from tagging at RunTask (ecs:CreateAction).
        documented = _cell_role_actions()
        assert "TagResource" in called and "UntagResource" in called
        assert called <= documented, f"calls the documented cell role does not allow: {called - documented}"
        paragraph = OPERATIONS.read_text().split("Its permissions are the dispatcher's ECS ones", 1)[1][:2000]
        assert "voicefleet:*" in paragraph  # least privilege: the claim's re-tag held to voicefleet's tag keys
        await ws.close()


class AnswerLostProxy(CellsProxy):
    """The cells' proxy, whose TagResource acts and then answers 500 (ECS's ServerException) while
    `lose_tag_answers` lasts: a call that took effect whose answer never came back, as a dropped
    connection or a 5xx after the write leaves it."""

    def __init__(self, moto_url: str) -> None:
        super().__init__(moto_url)
        self.lose_tag_answers = 0

    async def either(self, request: Request) -> Response:
        answer = await super().either(request)
        if action_of(dict(request.headers)) == "TagResource" and answer.status_code == 200 and self.lose_tag_answers:
            self.lose_tag_answers -= 1
            return JSONResponse({"__type": "ServerException", "message": "internal error"}, status_code=500,
                                media_type="application/x-amz-json-1.1")
        return answer


@pytest.fixture
def lossy_proxy(moto_ecs: dict[str, str]) -> Iterator[AnswerLostProxy]:
    with serve(AnswerLostProxy(moto_ecs["MOTO_URL"])) as served, serve(served.sts), serve(served.task_credentials):
        served.external_ids[ROLES["b"]] = EXTERNAL_ID
        yield served


async def test_a_claim_whose_retag_answer_was_lost_stops_its_reserve_task(
        lossy_proxy: AnswerLostProxy, accounts: dict[str, dict[str, Any]], store: RedisServer) -> None:
    """claim.py: the bot accepts the assignment (it joins the session), then `adopt` re-tags its task.
    TagResource acts but its answers are lost (5xx after the write, retried, given up): the claim
    fails, the bot is disconnected and retired, and the session launches cold. `retire` looks the
    task up by `_idle_arn`, which at a replica that did not launch it lists only tasks still idle
    (`_is_idle`: no session tag) -- this one now carries the session's tag, so nothing is stopped.
    An assigned bot that loses its channel reconnects and goes on serving its session
    (bot/channel_session.py), so the session runs two bots (the caller hears both, both are paid),
    and the session's cell holds two tasks tagged with it. Bots dial any replica behind the load
    balancer, so with N replicas most claims are at a replica that did not launch the bot."""
    proxy = lossy_proxy
    env = {**reserve_env(proxy, accounts), **store.env}
    async with replica(env) as (one, port_one), replica(env) as (two, port_two):
        assert one.reserve is not None and two.reserve is not None
        await one.reserve.refill()
        await two.reserve.refill()
        launched_one, launched_two = idle_tasks(one), idle_tasks(two)
        [(bot_id, arn)] = {**launched_one, **launched_two}.items()
        # The bot dials the replica that did not launch it.
        state, port = (two, port_two) if bot_id in launched_one else (one, port_one)
        ws = await dial(proxy, state, port, bot_id, arn)
        proxy.lose_tag_answers = 100  # every try of the claim's TagResource: it acts, its answer is lost
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        assert state.reserve is not None
        result = await state.reserve.launch(s)
        assert await accepting == s.session_id  # the bot took the session before its re-tag
        proxy.lose_tag_answers = 0
        assert result.created and not result.claimed  # launched cold: a second task for the session
        member = state.machines._warm[cell_of(arn)]  # type: ignore[attr-defined]

        async def reserve_task_stopping() -> bool:
            [task] = await member._describe([arn])
            return task.get("desiredStatus") == "STOPPED"

        await until(reserve_task_stopping, "the claimed-then-failed reserve task to be stopped", timeout=20)
        await ws.close()


async def test_a_claim_in_a_cell_that_cannot_be_read_never_leaves_its_bot_running_beside_a_cold_one(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """docs/operations.md#cells: a lost cell's idle bots "stay offered: a claim that cannot re-tag one
    there retires it and starts cold". With its reads refused (ListTasks/DescribeTasks: the state
    `unreadable` names), the re-tag succeeds (TagResource, UntagResource), `EcsWarmMachines.adopt`
    forgets the task's ARN, then its DescribeTasks fails: the claim fails after the bot accepted the
    session. `retire` then needs a listing (refused), so nothing is stopped; once the cell answers
    again the task carries the session's tag, so no idle sweep ever stops it. The assigned bot goes
    on serving its session (bot/channel_session.py) beside the cold one launched for it."""
    async with replica(reserve_env(proxy, accounts)) as (state, port):
        assert state.reserve is not None
        bot_id, arn, ws = await idle_bot_in_a(proxy, state, port)
        proxy.unreadable_accounts.add(ACCOUNTS["a"])  # a's role may no longer read its tasks
        accepting = asyncio.create_task(accept(ws))
        s = spec()
        try:
            result = await state.reserve.launch(s)
        except MachinesError:
            result = None  # the cold start's own fate is the other test's; the bot's is this one's
        assert await accepting == s.session_id
        await state.reserve._retirements.aclose()  # type: ignore[union-attr] # its background retirement done
        proxy.unreadable_accounts.clear()  # a answers again
        member = state.machines._warm["a"]  # type: ignore[attr-defined]
        [task] = await member._describe([arn])
        if result is not None and result.claimed:
            assert result.machine.machine_id == arn  # claimed after all: one bot, the session's
        else:  # started cold: the bot that accepted the session must not go on serving it
            assert task.get("desiredStatus") == "STOPPED", f"reserve task {arn} left running, tagged " \
                f"{[t for t in task.get('tags', []) if t['key'].startswith('voicefleet')]}"
        await ws.close()


async def test_a_warming_bot_forgotten_with_its_cell_is_still_stopped(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    """warming.py skips `retire` for a bot `in_lost_cell` (so its image takes no failure). But this
    replica launched it and holds its task ARN: StopTask needs no listing, and the cell's reads being
    refused (or one throttled ListTasks) says nothing of its writes. Left alone, the task runs while the
    reserve launches its replacement elsewhere; if it never dials in, only the idle sweep stops it,
    after `RESERVE_MAX_IDLE_SECONDS` + grace once the cell answers again (never while it does not)."""
    async with replica(reserve_env(proxy, accounts, idle=2, burst=4)) as (state, _):
        reserve = state.reserve
        assert reserve is not None
        await reserve.refill()  # one bot in each cell
        await spend(state, "a", 1)
        tasks = idle_tasks(state)
        [(in_b, arn_b)] = [(bot_id, arn) for bot_id, arn in tasks.items() if cell_of(arn) == "b"]
        proxy.unreadable_accounts.add(ACCOUNTS["b"])
        cold = reserve.planning.sizer.cold.mean
        started = reserve._clock()
        reserve._clock = lambda: started + cold * 2  # type: ignore[method-assign]
        await reserve.refill()  # b's late bot is forgotten, its replacement launched in a
        assert in_b not in reserve._warming._launched  # type: ignore[attr-defined]
        await reserve._retirements.aclose()  # any retirement spawned in the background, done
        stops = [r.get("task") for r in proxy.requests_for("StopTask")]
        assert arn_b in stops, "the forgotten bot's task was never stopped"
        proxy.unreadable_accounts.clear()

"""ECS_CELLS when something goes wrong: one account that cannot be read, a RunTask whose answer was
lost, a release's task definition of another account, the store down, a cell removed, a bot
whose role is another account's. Each case leaves one task per session at most, and the other
cells' starts going.
"""

# ruff: noqa: F811 - the tests take the cells' fixtures, imported from test_ecs_cells, as arguments

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import httpx
import pytest

from botchannel.contract import Hello
from dispatcher.app import create_app
from dispatcher.channel.credentials import BotGrant
from dispatcher.factory import configuration_problems
from dispatcher.machines.base import MachinesError
from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.observability.metrics import Metrics
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_ecs_cells import (  # noqa: F401 - the cells' fixtures
    ACCOUNTS,
    LONG_DRAIN,
    account_of_task,
    accounts,
    cells_env,
    coordination,
    homed_in,
    machines,
    proxy,
)
from tests.dispatcher.sessions.test_reaper import RecordingRooms
from tests.fakes.ecs import REGION
from tests.fakes.ecs_cells import CellsProxy, account_of
from tests.fakes.fixtures import moto_ecs  # noqa: F401 - the moto server
from tests.support.dispatcher_server import serving
from tests.support.waiting import within

API_KEY = "cells-faults-key-0123456789"


def cells(env: dict[str, str], coordination: LocalCoordination, **kw: Any) -> EcsCellMachines:
    return EcsCellMachines(EcsSettings.from_env(env), coordination, drain_base=LONG_DRAIN, **kw)


def active_by_account(found: list[Any], session: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for machine in found:
        if machine.session_id == session and machine.state.is_active:
            out.setdefault(account_of_task(machine.machine_id), []).append(machine.machine_id)
    return out


def ecs_calls(proxy: CellsProxy, since: int) -> list[tuple[str, str]]:
    """(account, action) of every ECS call the proxy saw after the first `since`."""
    return [(account_of(c.headers), c.headers.get("x-amz-target", "").rsplit(".", 1)[-1])
            for c in proxy.calls[since:] if c.headers.get("x-amz-target")]


async def test_a_cell_whose_reads_fail_stops_no_other_cells_listing_looks_or_starts(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    good = cells(cells_env(proxy, accounts), coordination)
    [in_b] = homed_in(good, "b")
    [in_a] = homed_in(good, "a")
    try:
        launched_b = (await good.launch(spec(in_b))).machine.machine_id
        launched_a = (await good.launch(spec(in_a))).machine.machine_id
    finally:
        await good.aclose()
    # Another replica, to which cell b's role now refuses itself (a wrong external id, a role deleted).
    broken = cells(cells_env(proxy, accounts, external_id="wrong-id"), coordination)
    try:
        listed = await broken.list()  # the reaper's sweep and admission's count: a's tasks, b shown unreadable
        assert launched_a in {m.machine_id for m in listed} and launched_b not in {m.machine_id for m in listed}
        views = {view.name: view for view in broken.views()}
        assert views["b"].unreadable is not None and "ecs_unauthorized" in views["b"].unreadable
        assert views["a"].unreadable is None and views["a"].running >= 1
        found = await broken.status(in_a)
        assert found is not None and found.machine_id == launched_a
        # A new session homed in b: no record, nothing launched: "not found", and its start goes on in a.
        [new_in_b] = homed_in(broken, "b")
        assert await broken.status(new_in_b) is None
        assert account_of_task((await broken.launch(spec(new_in_b))).machine.machine_id) == ACCOUNTS["a"]
        # The session recorded in b cannot be known while b does not answer: a 503, never "not found".
        for look in (broken.status, broken.stop):
            with pytest.raises(MachinesError) as unknown:
                await look(in_b)
            assert unknown.value.reason == "ecs_cell_unavailable" and as_api_error(unknown.value).status == 503
    finally:
        await broken.aclose()


async def test_the_reaper_ends_no_room_of_a_cell_it_could_not_list(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    good = cells(cells_env(proxy, accounts), coordination)
    [in_b] = homed_in(good, "b")
    try:
        await good.launch(spec(in_b))
    finally:
        await good.aclose()
    broken = cells(cells_env(proxy, accounts, external_id="wrong-id"), coordination)
    rooms = RecordingRooms(existing={in_b: time.time() - 3600})  # the live call's room, past any grace
    sweeper = Reaper(broken, rooms, Metrics("ecs"), max_session_seconds=3600,  # type: ignore[arg-type]
                     settings=ReaperSettings(grace_seconds=30))
    try:
        # (Ended tasks of earlier tests' sessions, listed in a, may have their rooms ended: not this one.)
        assert "orphan_room" not in await sweeper.sweep() and in_b in rooms.existing
    finally:
        await broken.aclose()


async def test_keyed_and_unkeyed_starts_go_on_while_one_cell_refuses_the_dispatcher(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    provider = cells(cells_env(proxy, accounts, external_id="wrong-id"), LocalCoordination())
    settings = Settings(api_key_hashes=frozenset({hash_api_key(API_KEY)}), max_concurrent_sessions=1000)
    app = create_app(settings, env={"RESERVE_MAX_IDLE": "0"}, machines=provider, rooms=None)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    answers = []
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1", timeout=60) as api:
        try:
            for i in range(4):
                keyed = {"Idempotency-Key": f"call-{i}"} if i % 2 else {}
                answer = await api.post("/start", json={}, headers={**auth, **keyed})
                answers.append((answer.status_code, answer.text[:200]))
        finally:
            await app.state.voicefleet.aclose()
    assert all(status < 300 for status, _ in answers), answers
    assert set(proxy.run_task_accounts) == {ACCOUNTS["a"]}


def lose_the_first_runtask_answer_then_throttle(proxy: CellsProxy, *, deny: bool = False) -> asyncio.Task[None]:
    """The next RunTask's answer is lost (past ECS_READ_TIMEOUT_SECONDS=0.5) though ECS still runs its
    task 1.5 s later; every RunTask in account a after it meets ThrottlingException (`deny`:
    AccessDeniedException)."""
    proxy.delay_action("RunTask", 1.5, times=1)

    async def refuse_a_once_the_first_runtask_is_in() -> None:
        while not proxy.run_task_accounts:
            await asyncio.sleep(0.02)
        (proxy.denied_accounts if deny else proxy.throttled_accounts).add(ACCOUNTS["a"])

    return asyncio.create_task(refuse_a_once_the_first_runtask_is_in())


LOST_ANSWER = {"ECS_READ_TIMEOUT_SECONDS": "0.5", "ECS_RETRY_DEADLINE_SECONDS": "3"}


async def test_a_runtask_whose_answer_was_lost_stays_in_its_cell_though_the_retry_is_throttled(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    env = {**cells_env(proxy, accounts), **LOST_ANSWER}
    here, there = cells(env, coordination), cells(env, coordination)  # two replicas
    try:
        [session] = homed_in(here, "a")
        await here.list()  # each cell's role assumed before the lost answer
        throttler = lose_the_first_runtask_answer_then_throttle(proxy)
        try:
            launched = await here.launch(spec(session))
        except MachinesError as refused:  # or refused, the task looked for in a: never made in b
            assert refused.reason == "ecs_unavailable"
            launched = None
        await throttler
        proxy.throttled_accounts.clear()
        assert proxy.run_task_accounts == [ACCOUNTS["a"]]  # one RunTask reached ECS: a's first
        if launched is not None:
            assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"]
        # The first RunTask, its answer delayed, has landed in a (served once nothing is in flight).
        assert await within(lambda: proxy.in_flight() == 0, 30, interval=0.02), "the delayed RunTask never landed"
        seen = active_by_account(await here.list(), session)
        assert list(seen) == [ACCOUNTS["a"]] and len(seen[ACCOUNTS["a"]]) == 1, seen
        elsewhere = await there.status(session)  # every replica names the one task
        assert elsewhere is not None and elsewhere.machine_id == seen[ACCOUNTS["a"]][0]
        assert "a" not in {view.name for view in here.views() if view.drained_until is not None}
    finally:
        await here.aclose()
        await there.aclose()


@pytest.mark.parametrize("deny", [False, True], ids=["throttled", "denied"])
async def test_in_the_last_open_cell_a_lost_answer_then_a_refusal_keeps_the_sessions_cell_record(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination, deny: bool) -> None:
    provider = cells({**cells_env(proxy, accounts), **LOST_ANSWER}, coordination)
    try:
        [session] = homed_in(provider, "a")
        await provider.list()
        provider.cells.drain("b", "ThrottlingException")  # a is the last open cell
        throttler = lose_the_first_runtask_answer_then_throttle(proxy, deny=deny)
        try:
            launched = await provider.launch(spec(session))
            assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"]
        except MachinesError as refused:
            assert refused.reason == "ecs_unavailable"  # looked for in a, not "every cell is drained"
        await throttler
        proxy.throttled_accounts.clear()
        proxy.denied_accounts.clear()
        # The record stays: a retry at any replica goes to a, where the task may be, never to b.
        assert await coordination.key_holders.held("ecs-cell:" + session) == "a"
        assert "a" not in {view.name for view in provider.views() if view.drained_until is not None}
    finally:
        await provider.aclose()


async def test_a_replay_that_finds_its_cell_recorded_stays_there_when_the_cell_throttles(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    """An earlier launch of the session (any replica) recorded a and sent its RunTask, whose answer
    was lost: the task may be in a. A replay that a throttles is refused, never run in b."""
    provider = cells(cells_env(proxy, accounts), coordination)
    try:
        [session] = homed_in(provider, "a")
        await coordination.key_holders.first("ecs-cell:" + session, "a", 3600)  # the earlier launch's record
        proxy.throttle_account(ACCOUNTS["a"])
        with pytest.raises(MachinesError) as refused:
            await provider.launch(spec(session))
        assert refused.value.reason == "ecs_throttled" and ACCOUNTS["b"] not in proxy.run_task_accounts
        assert await coordination.key_holders.held("ecs-cell:" + session) == "a"
    finally:
        await provider.aclose()


def release_env(proxy: CellsProxy, accounts: dict[str, dict[str, Any]], release_arn: str,
                mapped: dict[str, str] | None) -> dict[str, str]:
    env = cells_env(proxy, accounts)
    listed = json.loads(env["ECS_CELLS"])
    if mapped is not None:
        listed[1]["task_definitions"] = mapped
    releases = {"releases": [{"name": "r-1", "images": {"*": release_arn}}]}
    return {**env, "ECS_CELLS": json.dumps(listed), "RELEASES": json.dumps(releases)}


async def test_a_release_runs_each_cells_own_task_definition(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    """(A cell that maps none: test_ecs_cell_releases.py.)"""
    release_arn = f"arn:aws:ecs:{REGION}:{ACCOUNTS['a']}:task-definition/bot:1"  # the stack's, in account a
    provider = cells(release_env(proxy, accounts, release_arn, {release_arn: "bot:1"}), coordination)
    try:
        sent = []
        for cell in ("a", "b"):
            [session] = homed_in(provider, cell)
            launched = await provider.launch(dataclasses.replace(spec(session), image=release_arn, release="r-1"))
            assert launched.created and account_of_task(launched.machine.machine_id) == ACCOUNTS[cell]
        for call in proxy.calls:
            if call.headers.get("x-amz-target", "").endswith("RunTask"):
                sent.append((account_of(call.headers), json.loads(call.body)["taskDefinition"]))
        assert sent == [(ACCOUNTS["a"], release_arn), (ACCOUNTS["b"], "bot:1")]
    finally:
        await provider.aclose()


class StoreDown:
    async def first(self, what: str, value: str, seconds: float) -> str:
        raise StoreUnavailable("down")

    async def held(self, what: str) -> str | None:
        raise StoreUnavailable("down")

    async def let_go(self, what: str, value: str) -> None:
        raise StoreUnavailable("down")


async def test_the_store_down_refuses_a_start_at_once_without_looking_for_a_task(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    coordination = LocalCoordination()
    coordination.key_holders = StoreDown()  # type: ignore[assignment]
    provider = cells(cells_env(proxy, accounts), coordination)
    try:
        [session] = homed_in(provider, "a")
        before = len(proxy.calls)
        with pytest.raises(MachinesError) as refused:
            await provider.launch(spec(session))
        assert refused.value.reason == "ecs_store_unavailable" and as_api_error(refused.value).status == 503
        assert ecs_calls(proxy, before) == [] and provider.lost._watches == {}  # nothing sent, nothing watched
    finally:
        await provider.aclose()


async def test_a_session_recorded_in_a_removed_cell_is_refused_not_launched_again(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    env = cells_env(proxy, accounts)
    before = cells(env, coordination)
    [session] = homed_in(before, "b")
    try:
        await before.launch(spec(session))
    finally:
        await before.aclose()
    after = cells({**env, "ECS_CELLS": json.dumps(json.loads(env["ECS_CELLS"])[:1])}, coordination)  # b dropped
    try:
        runs = len(proxy.run_task_accounts)
        for call in (after.status, after.stop, lambda session: after.launch(spec(session))):
            with pytest.raises(MachinesError) as refused:
                await call(session)
            answer = as_api_error(refused.value)
            assert (refused.value.reason, answer.status) == ("ecs_cell_removed", 503)
            assert "cell b" in answer.message and "ECS_CELLS" in answer.message
        assert len(proxy.run_task_accounts) == runs and after.lost._watches == {}
    finally:
        await after.aclose()


def test_cells_without_the_shared_store_are_refused_at_start_up(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    env = {**cells_env(proxy, accounts), "MACHINES": "ecs", "DAILY_API_KEY": "k"}
    assert any("ECS_CELLS needs the shared store: set REDIS_URL" in p for p in configuration_problems(env))
    stored = {**env, "REDIS_URL": "redis://store:6379", "REDIS_MESSAGE_SECRET": "s" * 32}
    assert not any("ECS_CELLS needs" in p for p in configuration_problems(stored))


async def test_a_look_and_a_hello_ask_one_account_only(machines: EcsCellMachines, proxy: CellsProxy) -> None:
    [session] = homed_in(machines, "b")
    arn = (await machines.launch(spec(session))).machine.machine_id
    before = len(proxy.calls)
    assert await machines.status(homed_in(machines, "a")[0]) is None  # never launched: its home alone is asked
    assert {account for account, _ in ecs_calls(proxy, before)} == {ACCOUNTS["a"]}
    identity = await proxy.task_identity(arn)
    before = len(proxy.calls)
    grant = BotGrant("session", session, int(time.time()) + 60)
    assert await machines.identity.refusal(grant, Hello(machine_id=arn, identity=identity)) is None
    assert ecs_calls(proxy, before) == [(ACCOUNTS["b"], "DescribeTasks")]


async def test_a_bot_role_of_one_account_cannot_vouch_for_a_task_of_another(
        machines: EcsCellMachines, proxy: CellsProxy) -> None:
    [session] = homed_in(machines, "b")
    arn = (await machines.launch(spec(session))).machine.machine_id
    proxy.account_roles.forged_account = ACCOUNTS["a"]  # account a's bot role, its session named as b's task
    identity = await proxy.task_identity(arn)
    refused = await machines.identity.refusal(BotGrant("session", session, int(time.time()) + 60),
                                              Hello(machine_id=arn, identity=identity))
    assert refused is not None and f"of account {ACCOUNTS['a']}" in refused

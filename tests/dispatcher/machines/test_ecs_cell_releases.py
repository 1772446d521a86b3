"""A release's task definition of another account over ECS_CELLS, end to end against moto (server
mode, behind the proxy that checks every signature and account: tests/fakes/ecs_cells.py). The stack
registers a build in its own account; a cell maps its copy (`task_definitions`) only after the `up`
that registered it. Until then that cell is passed over by the release's sessions and refills (not
drained: its other releases' starts still go there), the dispatcher starts all the same, and a
release no cell maps fails its start `release_image_missing`, nothing sent. Only a deployment task
definition no cell can run is refused at start-up.
"""

# ruff: noqa: F811 - the tests take the cells' fixtures, imported from test_ecs_cells, as arguments

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.reserve.releases import WarmRelease
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_ecs_cell_reserve import (  # noqa: F401 - its store fixture
    idle_tasks,
    replica,
    reserve_env,
    run_tasks_in,
    store,
)
from tests.dispatcher.machines.test_ecs_cells import (  # noqa: F401 - the cells' fixtures
    ACCOUNTS,
    LONG_DRAIN,
    account_of_task,
    accounts,
    cells_env,
    coordination,
    proxy,
)
from tests.fakes.ecs import REGION
from tests.fakes.ecs_cells import CellsProxy, account_of
from tests.support.cells import homed_in
from tests.support.redis_server import RedisServer

STACKS_ACCOUNT = "333333333333"  # the stack's own account, where `up` registers each build: no cell's
RELEASE_ARN = f"arn:aws:ecs:{REGION}:{STACKS_ACCOUNT}:task-definition/bot:7"


def mapped_in(env: dict[str, str], cells: dict[str, dict[str, str]], **more: str) -> dict[str, str]:
    """`env` whose cells map what `cells` says (cell → its `task_definitions`), with release r-7 of RELEASE_ARN."""
    listed = json.loads(env["ECS_CELLS"])
    for cell in listed:
        if cell["name"] in cells:
            cell["task_definitions"] = cells[cell["name"]]
    releases = {"releases": [{"name": "r-7", "images": {"*": RELEASE_ARN}}]}
    return {**env, "ECS_CELLS": json.dumps(listed), "RELEASES": json.dumps(releases), **more}


def run_tasks(proxy: CellsProxy, since: int = 0) -> list[tuple[str, str]]:
    """(account, taskDefinition) of each RunTask the proxy saw after the first `since` calls."""
    return [(account_of(call.headers), json.loads(call.body)["taskDefinition"]) for call in proxy.calls[since:]
            if call.headers.get("x-amz-target", "").endswith(".RunTask")]


def of_release(session: str) -> Any:
    return dataclasses.replace(spec(session), image=RELEASE_ARN, release="r-7")


async def test_a_release_mapped_in_one_cell_goes_there_alone_and_the_other_keeps_its_other_starts(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    env = mapped_in(cells_env(proxy, accounts), {"b": {RELEASE_ARN: "bot:1"}})
    provider = EcsCellMachines(EcsSettings.from_env(env), coordination, drain_base=LONG_DRAIN)  # starts: a maps none
    try:
        for cell in ("a", "b"):
            [session] = homed_in(provider, cell)
            launched = await provider.launch(of_release(session))
            assert launched.created and account_of_task(launched.machine.machine_id) == ACCOUNTS["b"]
        assert run_tasks(proxy) == [(ACCOUNTS["b"], "bot:1")] * 2  # none sent to a, which cannot run it
        assert all(view.drained_until is None for view in provider.views())  # passed over, not drained
        [default] = homed_in(provider, "a", 1)
        launched = await provider.launch(spec(default))  # the deployment's own still starts in a
        assert account_of_task(launched.machine.machine_id) == ACCOUNTS["a"]
    finally:
        await provider.aclose()


async def test_a_release_no_cell_maps_fails_its_start_naming_it_and_nothing_is_launched(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], coordination: LocalCoordination) -> None:
    provider = EcsCellMachines(EcsSettings.from_env(mapped_in(cells_env(proxy, accounts), {})), coordination,
                               drain_base=LONG_DRAIN)
    try:
        [session] = homed_in(provider, "a")
        before = len(proxy.calls)
        with pytest.raises(MachinesError) as refused:
            await provider.launch(of_release(session))
        error = refused.value
        assert error.reason == "release_image_missing"  # as a release template no GCE cell has
        assert RELEASE_ARN in error.message and ACCOUNTS["a"] in error.message and ACCOUNTS["b"] in error.message
        said = as_api_error(error).message
        assert "r-7" in said and '"task_definitions"' in said and STACKS_ACCOUNT not in said  # the fix, no accounts
        assert run_tasks(proxy, before) == []  # nothing sent
        assert await coordination.key_holders.held("ecs-cell:" + session) is None  # nor recorded
        assert all(view.drained_until is None for view in provider.views())
    finally:
        await provider.aclose()


def test_only_a_deployment_task_definition_no_cell_can_run_is_refused_at_start_up(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    env = cells_env(proxy, accounts)
    with pytest.raises(SettingsError) as refused:
        EcsSettings.from_env(mapped_in(env, {}, ECS_TASK_DEFINITION=RELEASE_ARN))
    said = str(refused.value)
    assert "no ECS_CELLS cell can run" in said and RELEASE_ARN in said and '"task_definitions"' in said
    # Mapped in one cell: the dispatcher starts, and the deployment's sessions run in that cell alone.
    settings = EcsSettings.from_env(mapped_in(env, {"b": {RELEASE_ARN: "bot:1"}}, ECS_TASK_DEFINITION=RELEASE_ARN))
    assert [settings.for_cell(cell).task_definition for cell in settings.cells] == [RELEASE_ARN, "bot:1"]
    # A cell naming another account's task definition as its own copy is still a mistake, refused.
    with pytest.raises(SettingsError, match="cell b"):
        EcsSettings.from_env(mapped_in(env, {"b": {RELEASE_ARN: RELEASE_ARN}}))


async def test_the_reserve_refills_a_release_only_in_the_cells_that_map_it(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]]) -> None:
    env = mapped_in(reserve_env(proxy, accounts, idle=2), {"b": {RELEASE_ARN: "bot:1"}})
    async with replica(env) as (state, _):  # the dispatcher starts: a maps nothing
        assert state.reserve is not None
        release = WarmRelease("r-7", RELEASE_ARN, 1.0)
        await state.reserve._refills.launch(2, release)  # the planner's launches for r-7
        tasks = idle_tasks(state)
        assert len(tasks) == 2 and {account_of_task(arn) for arn in tasks.values()} == {ACCOUNTS["b"]}
        assert run_tasks_in(proxy, ACCOUNTS["a"]) == 0 and run_tasks(proxy) == [(ACCOUNTS["b"], "bot:1")] * 2
        # b spared its two tokens (one kept for a cold start): no third r-7 refill, though a has tokens.
        await state.reserve._refills.launch(1, release)
        assert len(idle_tasks(state)) == 2
        # The deployment's own bots still refill in a.
        await state.reserve._refills.launch(1)
        assert {account_of_task(arn) for arn in idle_tasks(state).values()} == {ACCOUNTS["a"], ACCOUNTS["b"]}


async def test_two_replicas_start_with_a_cell_that_maps_no_release_and_agree_where_its_session_runs(
        proxy: CellsProxy, accounts: dict[str, dict[str, Any]], store: RedisServer) -> None:
    env = {**mapped_in(reserve_env(proxy, accounts), {"b": {RELEASE_ARN: "bot:1"}}), **store.env}
    async with replica(env) as (one, _), replica(env) as (two, _):  # both start: a maps nothing
        assert isinstance(one.machines, EcsCellMachines) and isinstance(two.machines, EcsCellMachines)
        [session] = homed_in(one.machines, "a")
        launched = await one.machines.launch(of_release(session))
        assert account_of_task(launched.machine.machine_id) == ACCOUNTS["b"]
        # The other replica meets it in b through the store's record: a replay there launches nothing new.
        found = await two.machines.status(session)
        assert found is not None and found.machine_id == launched.machine.machine_id
        again = await two.machines.launch(of_release(session))
        assert not again.created and again.machine.machine_id == launched.machine.machine_id
        assert run_tasks_in(proxy, ACCOUNTS["a"]) == 0

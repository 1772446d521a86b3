"""The drain before a destroy with ECS_CELLS: each cell's account is swept through the cell's role, as the
dispatcher reaches it (the fake accounts of tests/fakes/ecs_cells.py: moto behind a proxy checking every
signature and external id), besides the stack's own account; a release no cell maps does not stop it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.machines.ecs.cells import EcsCellMachines
from dispatcher.machines.ecs.settings import EcsSettings
from dispatcher.store.local import LocalCoordination
from stacks.tools.drain import Drain, provider_environment
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_ecs_cells import ACCOUNTS, accounts, cells_env, proxy  # noqa: F401 - fixtures
from tests.fakes.ecs import provision
from tests.fakes.ecs_cells import CellsProxy
from tests.fakes.fixtures import moto_ecs  # noqa: F401 - a fixture
from tests.support.cells import homed_in

# A release of the stack's own account that no cell maps: the dispatcher would refuse to start, the drain must not.
UNMAPPED = "arn:aws:ecs:us-east-1:123456789012:task-definition/vf-cells-bot:9"


async def no_wait(_: float) -> None:
    return None


@pytest.fixture
def stack(moto_ecs: dict[str, str], proxy: CellsProxy,  # noqa: F811 - fixtures
          accounts: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A stack's own account (its cluster and drained dispatcher service) with the two cells of the fake."""
    import boto3

    own = provision(moto_ecs["MOTO_URL"], cluster="vf-cells-own", family="vf-cells-bot")
    client = boto3.client("ecs", region_name=own["AWS_REGION"], endpoint_url=moto_ecs["MOTO_URL"])
    client.create_service(cluster="vf-cells-own", serviceName="vf-cells-dispatcher", taskDefinition="vf-cells-bot",
                          desiredCount=0)
    # Each cell names its own account's network and bot (the fake's accounts were built as their stacks would).
    cells = [{**cell, "task_definition": accounts[cell["name"]]["ECS_TASK_DEFINITION"],
              "subnets": [accounts[cell["name"]]["ECS_SUBNETS"]],
              "security_groups": [accounts[cell["name"]]["ECS_SECURITY_GROUPS"]]}
             for cell in json.loads(cells_env(proxy, accounts)["ECS_CELLS"])]
    env = {**cells_env(proxy, accounts), **own, "MACHINES": "ecs", "ECS_CELLS": json.dumps(cells)}
    outputs = {"machinesEnvironment": {k: v for k, v in env.items() if not k.startswith("AWS_ENDPOINT")},
               "drained": True, "dispatcherService": "vf-cells-dispatcher"}
    yield {"env": env, "outputs": outputs, "proxy": proxy}


async def launch_in_each_cell(env: dict[str, str]) -> list[str]:
    machines = EcsCellMachines(EcsSettings.from_env(env), LocalCoordination())
    try:
        sessions = [homed_in(machines, cell)[0] for cell in ACCOUNTS]
        for session in sessions:
            assert (await machines.launch(spec(session))).created
        return sessions
    finally:
        await machines.aclose()


def test_the_drain_stops_every_cells_sessions_through_its_role(stack: dict[str, Any]) -> None:
    env, outputs = stack["env"], stack["outputs"]
    sessions = asyncio.run(launch_in_each_cell(env))
    releases = json.dumps({"releases": [{"name": "r-1", "images": {"*": UNMAPPED}}]})
    outputs = {**outputs, "machinesEnvironment": {**outputs["machinesEnvironment"], "RELEASES": releases}}
    drained_env = provider_environment(outputs, {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS")})
    report = asyncio.run(Drain(outputs, drained_env, grace=0, deadline=600, poll=0, sleep=no_wait).run())
    # The moto server is the test session's: the cells' clusters may hold earlier tests' tasks, which a drain
    # stops too; this test's own, one in each cell, must be among them.
    assert set(sessions) <= report.stopped_sessions

"""`python -m stacks.drain` on an Azure stack: once the dispatcher's Container App runs no replica, every
container group the aci provider launched is deleted (a session's, one that ended, an idle reserve
group), against the fake ARM (tests/fakes/arm_aci.py), signed in as the operator."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path

import pytest

from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.base import LaunchSpec
from dispatcher.store.local import LocalCoordination
from stacks.shared import contract
from stacks.tools.drain import Drain, DrainError, main, provider_environment
from tests.fakes.arm_aci import ARM_SCOPE, LOCATION, RESOURCE_GROUP, SUBSCRIPTION, FakeArmAci
from tests.fakes.fixtures import fake_aci  # noqa: F401 - a fixture

APP = "azure-dev-dispatcher"
SESSIONS = ("0123456789abcdef01234567", "89abcdef0123456789abcdef")
OPERATOR = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "ARM_ENDPOINT",
            "ACI_CA_BUNDLE")


def outputs(fake: FakeArmAci) -> dict[str, object]:
    env = {**fake.env, "ACI_GROUP_PREFIX": "vf-azure-dev"}
    return {"machinesEnvironment": {k: env[k] for k in contract.MACHINES_ENV if k in env}, "drained": True,
            "dispatcherApp": APP}


async def launch(fake: FakeArmAci) -> None:
    machines = AciWarmMachines.from_env({**fake.env, "ACI_GROUP_PREFIX": "vf-azure-dev",
                                         "BOT_CHANNEL_URL": "wss://d.example/bots/channel"}, LocalCoordination())
    try:
        for session_id in SESSIONS:
            await machines.launch(LaunchSpec(session_id=session_id, body_digest="d" * 16, max_session_seconds=60))
        await machines.launch_idle("rsv-0123456789ab")
    finally:
        await machines.aclose()
    fake.set_state(f"vf-azure-dev-{SESSIONS[0]}", "Running")
    fake.set_state(f"vf-azure-dev-{SESSIONS[1]}", "Terminated", 0)  # ended: the group stays until deleted


def test_azure_drain_waits_for_the_dispatcher_then_deletes_session_ended_and_reserve_groups(
        fake_aci: FakeArmAci) -> None:  # noqa: F811
    asyncio.run(launch(fake_aci))
    assert len(fake_aci.groups) == 3
    fake_aci.container_apps[APP] = [0, 1]  # the last revision's replica still finishes its sessions
    swept_while_it_ran: list[int] = []

    async def replica_ends(_: float) -> None:
        swept_while_it_ran.append(len(fake_aci.calls_to("DELETE", "/containerGroups/")))
        fake_aci.container_apps[APP] = [0, 0]

    environ = {k: fake_aci.env[k] for k in OPERATOR}  # the operator's service principal
    drain = Drain(outputs(fake_aci), provider_environment(outputs(fake_aci), environ), grace=0, deadline=600,
                  poll=0, sleep=replica_ends)
    report = asyncio.run(drain.run())
    assert swept_while_it_ran[0] == 0  # nothing deleted while a dispatcher could still launch
    assert fake_aci.groups == {}  # nothing left in the bots' subnet: its delete can succeed
    assert report.retired_idle == {"rsv-0123456789ab"} and report.stopped_sessions == set(SESSIONS)


def test_azure_drain_gives_up_at_its_deadline_while_the_dispatcher_runs(fake_aci: FakeArmAci) -> None:  # noqa: F811
    fake_aci.container_apps[APP] = [1]
    clock = iter(range(0, 10_000, 100))
    environ = {k: fake_aci.env[k] for k in OPERATOR}
    drain = Drain(outputs(fake_aci), provider_environment(outputs(fake_aci), environ), grace=0, deadline=600,
                  poll=0, clock=lambda: float(next(clock)), sleep=lambda _: asyncio.sleep(0))
    with pytest.raises(DrainError, match=f"Container App {APP} still runs 1 replica"):
        asyncio.run(drain.run())


def test_without_a_service_principal_the_drain_signs_in_with_az_login(
        fake_aci: FakeArmAci, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(launch(fake_aci))
    fake_aci.container_apps[APP] = [0]
    fake_aci.tokens["operator-cli-token"] = ARM_SCOPE  # what `az login` got from Entra
    fake_aci.principals["operator-cli-token"] = "operator"
    fake_aci.roles["operator"] = {fake_aci.scope}  # the operator's role on the stack's resource group
    az = tmp_path / "az"
    answer = json.dumps({"accessToken": "operator-cli-token", "expires_on": int(time.time()) + 3600})
    resource = ARM_SCOPE.removesuffix(".default")  # Azure's management audience, not the fake's address
    az.write_text(f"#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"account get-access-token --resource {resource}\" ] "
                  f"|| exit 2\necho '{answer}'\n")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "outputs.json").write_text(json.dumps(outputs(fake_aci)))
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("ARM_ENDPOINT", "ACI_CA_BUNDLE"):
        monkeypatch.setenv(name, fake_aci.env[name])
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["azure-dev", "--outputs", str(tmp_path / "outputs.json"), "--poll", "0"]) == 0
    assert fake_aci.groups == {} and "azure-dev: drained" in capsys.readouterr().out

    asyncio.run(launch(fake_aci))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no Azure CLI either: one line says what to do
    assert main(["azure-dev", "--outputs", str(tmp_path / "outputs.json"), "--poll", "0"]) == 1
    err = capsys.readouterr().err
    assert "az login" in err and "AZURE_CLIENT_SECRET" in err and err.count("\n") == 1


OTHER, THIRD = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
HOST_IDENTITY = "33333333-3333-3333-3333-333333333333"  # a cell's client_id: the dispatcher host's, not the operator's


def cells_outputs(fake: FakeArmAci, *more: dict[str, str]) -> dict[str, object]:
    """The stack's outputs with ACI_CELLS: cell a is the stack's own resource group, b another subscription's."""
    cells = [{"name": "a", "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "location": LOCATION},
             {"name": "b", "subscription_id": OTHER, "resource_group": "vf-cell-b", "location": LOCATION,
              "client_id": HOST_IDENTITY}, *more]
    env = {**fake.env, "ACI_GROUP_PREFIX": "vf-azure-dev", "ACI_CELLS": json.dumps(cells)}
    return {"machinesEnvironment": {k: env[k] for k in contract.MACHINES_ENV if k in env}, "drained": True,
            "dispatcherApp": APP}


async def launch_in(fake: FakeArmAci, subscription: str, resource_group: str, sessions: tuple[str, ...],
                    bot_id: str) -> None:
    """A cell's sessions' groups and a reserve group, as the dispatcher's cell there launched them."""
    machines = AciWarmMachines.from_env({**fake.env, "AZURE_SUBSCRIPTION_ID": subscription,
                                         "AZURE_RESOURCE_GROUP": resource_group, "ACI_GROUP_PREFIX": "vf-azure-dev",
                                         "BOT_CHANNEL_URL": "wss://d.example/bots/channel"}, LocalCoordination())
    try:
        for session_id in sessions:
            await machines.launch(LaunchSpec(session_id=session_id, body_digest="d" * 16, max_session_seconds=60))
        await machines.launch_idle(bot_id)
    finally:
        await machines.aclose()


IN_B = ("abcdef0123456789abcdef01",)


def test_azure_drain_deletes_every_cells_groups_signed_in_as_the_operator(fake_aci: FakeArmAci) -> None:  # noqa: F811
    cell_b = fake_aci.add_subscription(OTHER, "vf-cell-b")  # the operator's role there: `pulumi up` assigned one
    asyncio.run(launch(fake_aci))
    asyncio.run(launch_in(fake_aci, OTHER, "vf-cell-b", IN_B, "rsv-b"))
    assert len(cell_b.groups) == 2
    fake_aci.container_apps[APP] = [0]
    environ = {k: fake_aci.env[k] for k in OPERATOR}  # the operator's service principal, never the cell's identity
    drain = Drain(cells_outputs(fake_aci), provider_environment(cells_outputs(fake_aci), environ), grace=0,
                  deadline=600, poll=0, sleep=lambda _: asyncio.sleep(0.01))
    assert list(drain.cell_machines) == [f"cell b ({OTHER}/vf-cell-b)"]  # cell a is the stack's own sweep
    report = asyncio.run(drain.run())
    assert fake_aci.groups == {} and cell_b.groups == {}
    assert report.retired_idle == {"rsv-0123456789ab", "rsv-b"}
    assert report.stopped_sessions == {*SESSIONS, *IN_B}


def test_azure_drain_names_a_cell_it_could_not_drain_and_drains_the_others(fake_aci: FakeArmAci) -> None:  # noqa: F811
    cell_b = fake_aci.add_subscription(OTHER, "vf-cell-b")
    fake_aci.add_subscription(THIRD, "vf-cell-c", granted=False)  # no role of the operator's there
    asyncio.run(launch_in(fake_aci, OTHER, "vf-cell-b", IN_B, "rsv-b"))
    fake_aci.container_apps[APP] = [0]
    third = {"name": "c", "subscription_id": THIRD, "resource_group": "vf-cell-c", "location": LOCATION}
    outputs = cells_outputs(fake_aci, third)
    environ = {k: fake_aci.env[k] for k in OPERATOR}
    drain = Drain(outputs, provider_environment(outputs, environ), grace=0, deadline=600, poll=0,
                  sleep=lambda _: asyncio.sleep(0.01))
    with pytest.raises(DrainError) as refused:
        asyncio.run(drain.run())
    said = str(refused.value)
    assert "1 of 3 ACI resource groups not drained" in said and f"cell c ({THIRD}/vf-cell-c)" in said
    assert "aci_unauthorized" in said and "run the drain again" in said
    assert cell_b.groups == {}

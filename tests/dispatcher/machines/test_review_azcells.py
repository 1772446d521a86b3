"""Review of ACI_CELLS (dispatcher/machines/aci/cells.py) against ARM as it answers, each test a finding
that fails on the current code and passes once fixed.

- A cell's own `client_id` (a user-assigned identity of the dispatcher's host) whose sign-in is refused is
  that cell's failure alone, not the dispatcher's: the managed identity endpoint answers 400 for an
  identity the host does not hold (learn.microsoft.com/azure/container-apps/managed-identity, "REST
  endpoint reference"; azure-identity's ManagedIdentityCredential raises on it). The cell should be
  drained and the launch go elsewhere, as it is for the cell's refused role (403).
- ARM refuses a PUT whose linked subnet the caller may not join: 403 `LinkedAuthorizationFailed` ("has
  permission to perform action ... however, it does not have permission to perform action
  'Microsoft.Network/virtualNetworks/subnets/join/action' on the linked scope(s)", e.g.
  github.com/microsoft/planetary-computer-hub/pull/25); the fake ARM takes it, so the drain on it
  (AciCellMachines.drain_reason) is never exercised.
- An async operation's URL names its subscription and location (Azure-AsyncOperation); the fake ARM
  answered it from the first resource group of that subscription, whatever its location, so a create
  that failed in a cell of the same subscription in another location read as no group at all (fixed
  in tests/fakes/arm_aci.py: the last test passes).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatcher.machines.aci.cells import AciCellMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_aci_cells import LONG_DRAIN, OTHER, cells_env, drained
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.arm_aci import CLIENT_ID, RESOURCE_GROUP, SUBSCRIPTION, FakeArmAci, serve_tls
from tests.support.cells import homed_in

CELL_B_IDENTITY = "22222222-2222-2222-2222-222222222222"  # a user-assigned identity the host does not hold
SHARED_IDENTITY = "33333333-3333-3333-3333-333333333333"  # the dispatcher's own, named by a cell too
IDENTITY_HEADER = "identity-header-1"


class HostIdentityArm(FakeArmAci):
    """The fake ARM with its host's managed identity endpoint (Container Apps' IDENTITY_ENDPOINT,
    api-version 2019-08-01): an ARM token for each identity the host holds (`held`), 400 for another."""

    def __init__(self) -> None:
        super().__init__()
        self.held = {CLIENT_ID}

    def routes(self) -> list[Route]:
        return [*super().routes(), Route("/msi/token", self.identity_token, methods=["GET"])]

    async def identity_token(self, request: Request) -> Response:
        query = request.query_params
        if request.headers.get("x-identity-header") != IDENTITY_HEADER or query.get("api-version") != "2019-08-01":
            return JSONResponse({"statusCode": 400, "message": "bad request"}, status_code=400)
        client = query.get("client_id", "")
        if client not in self.held:
            return JSONResponse({"statusCode": 400, "message": "Unable to load the proper Managed Identity."},
                                status_code=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token], self.principals[token] = self.arm_scope, client
        return JSONResponse({"access_token": token, "expires_on": str(int(time.time()) + 3600),
                             "resource": query.get("resource"), "token_type": "Bearer", "client_id": client})


@pytest.fixture
def host_arm() -> Iterator[HostIdentityArm]:
    with serve_tls(HostIdentityArm()) as fake:
        yield fake


async def test_a_cell_whose_own_identity_cannot_sign_in_is_drained_and_its_launches_go_elsewhere(
        host_arm: HostIdentityArm) -> None:
    host_arm.add_subscription(OTHER, "vf-cell-b")
    env = {k: v for k, v in cells_env(host_arm).items() if k != "AZURE_CLIENT_SECRET"}
    cells = json.loads(env["ACI_CELLS"])
    cells[1]["client_id"] = CELL_B_IDENTITY
    env.update(ACI_CELLS=json.dumps(cells), IDENTITY_ENDPOINT=f"{host_arm.url}/msi/token",
               IDENTITY_HEADER=IDENTITY_HEADER)
    machines = AciCellMachines(AciSettings.from_env(env), LocalCoordination(), env, drain_base=LONG_DRAIN)
    try:
        [session] = homed_in(machines, "b")
        await machines.launch(spec(session))
        assert f"vf-{session}" in host_arm.groups
        assert set(drained(machines)) == {"b"}
    finally:
        await machines.aclose()


async def test_a_cell_naming_the_dispatchers_own_identity_refused_at_sign_in_drains_no_cell(
        host_arm: HostIdentityArm) -> None:
    """The shared identity's failure is every cell's: draining the cell that met it first would send
    the launch on to fail alike and leave the cells drained for nothing."""
    host_arm.add_subscription(OTHER, "vf-cell-b")
    host_arm.held = set()
    env = {k: v for k, v in cells_env(host_arm).items() if k != "AZURE_CLIENT_SECRET"}
    cells = json.loads(env["ACI_CELLS"])
    cells[1]["client_id"] = SHARED_IDENTITY  # the dispatcher's own AZURE_CLIENT_ID, named again
    env.update(ACI_CELLS=json.dumps(cells), AZURE_CLIENT_ID=SHARED_IDENTITY,
               IDENTITY_ENDPOINT=f"{host_arm.url}/msi/token", IDENTITY_HEADER=IDENTITY_HEADER)
    machines = AciCellMachines(AciSettings.from_env(env), LocalCoordination(), env, drain_base=LONG_DRAIN)
    try:
        [session] = homed_in(machines, "b")
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec(session))
        assert refused.value.reason == "aci_unauthorized" and drained(machines) == {}
    finally:
        await machines.aclose()


async def test_a_cells_subnet_the_dispatcher_may_not_join_is_refused_and_drains_the_cell(
        fake_aci: FakeArmAci) -> None:
    cell_b = fake_aci.add_subscription(OTHER, "vf-cell-b")  # a role on the resource group, none on the subnet
    env = cells_env(fake_aci)
    cells = json.loads(env["ACI_CELLS"])
    cells[1]["subnet_id"] = (f"/subscriptions/{OTHER}/resourceGroups/net-b/providers/Microsoft.Network/"
                             "virtualNetworks/vf-b/subnets/bots")
    env["ACI_CELLS"] = json.dumps(cells)
    machines = AciCellMachines(AciSettings.from_env(env), LocalCoordination(), env, drain_base=LONG_DRAIN)
    try:
        [session] = homed_in(machines, "b")
        await machines.launch(spec(session))
        assert not cell_b.groups and f"vf-{session}" in fake_aci.groups
        assert drained(machines) == {"b": "its role was refused (the dispatcher's log says how)"}
    finally:
        await machines.aclose()


async def test_a_failed_create_in_a_cell_of_the_same_subscription_elsewhere_reads_as_failed(
        fake_aci: FakeArmAci) -> None:
    cell_c = fake_aci.add_subscription(SUBSCRIPTION, "vf-cell-c", "northeurope")
    cell_c.create_error = "InternalServerError"  # accepted, then failed in its async operation
    cells = [{"name": "a", "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "location": "westeurope"},
             {"name": "c", "subscription_id": SUBSCRIPTION, "resource_group": "vf-cell-c", "location": "northeurope"}]
    env = {**cells_env(fake_aci), "ACI_CELLS": json.dumps(cells)}
    machines = AciCellMachines(AciSettings.from_env(env), LocalCoordination(), env, drain_base=LONG_DRAIN)
    try:
        [session] = homed_in(machines, "c")
        await machines.launch(spec(session))
        machine = await machines.status(session)
        assert machine is not None and machine.state == MachineState.FAILED
    finally:
        await machines.aclose()

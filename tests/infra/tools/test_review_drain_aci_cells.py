"""Hostile review of `python -m stacks.drain` over ACI cells (stacks/tools/drain.py `_sweep_cells`,
stacks/tools/drain_azure.py `aci_cell_machines`): strict-xfail until the product is fixed.

Each cell's sweep signs in on its own (`operator_token` per cell: an `ArmToken` of the operator's service
principal). An Entra sign-in that keeps failing (a 5xx, a reset: dispatcher/outbound/retry.py `send`
raises `Transient` once its retries are spent) is not a `ProviderError`, so `_sweep_cells`' `swept` lets it
out of `asyncio.gather`: the drain stops at once with "credentials: ...", the other cells' sweeps are
cancelled wherever they were, and no cell is named, against the module's promise that it "names every one it
could not drain once it has drained the others".
"""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.machines.aci.reserve import AciWarmMachines
from stacks.tools.drain import Drain, DrainError, provider_environment
from tests.fakes.arm_aci import FakeArmAci
from tests.fakes.fixtures import fake_aci  # noqa: F401 - a fixture
from tests.infra.tools.test_drain_azure import APP, IN_B, OPERATOR, OTHER, cells_outputs, launch, launch_in


def test_a_cell_whose_sign_in_fails_is_named_and_the_others_are_drained(fake_aci: FakeArmAci) -> None:  # noqa: F811
    cell_b = fake_aci.add_subscription(OTHER, "vf-cell-b")
    asyncio.run(launch(fake_aci))
    asyncio.run(launch_in(fake_aci, OTHER, "vf-cell-b", IN_B, "rsv-b"))
    fake_aci.container_apps[APP] = [0]
    outputs = cells_outputs(fake_aci)
    drain = Drain(outputs, provider_environment(outputs, {k: fake_aci.env[k] for k in OPERATOR}), grace=0,
                  deadline=600, poll=0, sleep=lambda _: asyncio.sleep(0.01))

    async def run() -> None:
        assert isinstance(drain.machines, AciWarmMachines)
        await drain.machines.token.headers()  # the stack's own sign-in, before Entra falters
        fake_aci.fail(503, path_contains="/oauth2/", times=1000)  # every later sign-in: cell b's
        await drain.run()

    with pytest.raises(DrainError) as refused:
        asyncio.run(run())
    assert f"cell b ({OTHER}/vf-cell-b)" in str(refused.value)
    assert fake_aci.groups == {}, "the stack's own resource group was left undrained"
    assert len(cell_b.groups) == 2

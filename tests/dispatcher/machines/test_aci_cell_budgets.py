"""Each ACI_CELLS cell's own create budget (`create_rate`, `create_burst`): read with the cell, each
defaulting to ACI_CREATE_RATE / ACI_CREATE_BURST and refused with the cell named and the way out; the
cell's `aci:<cell>` bucket made at it in the store, by the cells' launches and the cell's own creates
and deletes alike (one rate, never retuned between them); the wait a cold start may take stays
ACI_CREATE_MAX_WAIT; the fleet planner counts on the slowest cell's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.machines.aci.cell_reserve import AciCellWarmMachines
from dispatcher.machines.aci.cells import AciCellMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.frozen import tiers_of
from dispatcher.settings import SettingsError
from dispatcher.store.coordination import CreateLimit
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_aci_cells import cells_env
from tests.fakes.arm_aci import FakeArmAci

DEPLOYMENT = {"ACI_CREATE_RATE": "0.05", "ACI_CREATE_BURST": "40", "ACI_CREATE_MAX_WAIT": "3"}


def budget_env(fake: FakeArmAci, **b: Any) -> dict[str, str]:
    """Cells a and b, b with the fields `b` gives it, over the deployment's own create budget."""
    env = cells_env(fake, **DEPLOYMENT)
    cells = json.loads(env["ACI_CELLS"])
    cells[1].update(b)
    return {**env, "ACI_CELLS": json.dumps(cells)}


class RecordedLimits(LocalCoordination):
    """The deployment's store in this process, recording each bucket asked for with its rate and burst."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, float, int]] = []

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        self.asked.append((name, per_second, burst))
        return super().create_limit(name, per_second, burst)

    def rates(self, name: str) -> set[tuple[float, int]]:
        return {(per_second, burst) for asked, per_second, burst in self.asked if asked == name}


def test_a_cell_without_its_own_budget_takes_the_deployments(fake_aci: FakeArmAci) -> None:
    settings = AciSettings.from_env(budget_env(fake_aci))
    assert [(c.create_rate, c.create_burst) for c in settings.cells] == [(None, None), (None, None)]
    assert settings.cell_create_rates() == {"a": Rate(0.05, 40, 3.0), "b": Rate(0.05, 40, 3.0)}


@pytest.mark.parametrize(("own", "budget"), [
    ({"create_rate": 0.5, "create_burst": 150}, Rate(0.5, 150, 3.0)),
    ({"create_rate": 1}, Rate(1.0, 40, 3.0)),  # a JSON whole number is a rate too
    ({"create_burst": 10}, Rate(0.05, 10, 3.0)),
])
def test_a_cells_own_rate_and_burst_each_replace_the_deployments_and_its_wait_stays(
        fake_aci: FakeArmAci, own: dict[str, Any], budget: Rate) -> None:
    settings = AciSettings.from_env(budget_env(fake_aci, **own))
    assert settings.cell_create_rates() == {"a": Rate(0.05, 40, 3.0), "b": budget}
    assert [settings.for_cell(c).create_rate for c in settings.cells] == [Rate(0.05, 40, 3.0), budget]


@pytest.mark.parametrize(("field", "value"), [
    ("create_rate", 0), ("create_rate", -1), ("create_rate", "fast"), ("create_rate", True),
    ("create_rate", float("nan")), ("create_rate", float("inf")), ("create_rate", 10**400), ("create_rate", 1e-12),
    ("create_burst", 0), ("create_burst", 1.5), ("create_burst", "3"), ("create_burst", False),
])
def test_a_budget_the_dispatcher_cannot_pace_is_refused_naming_the_cell_and_the_way_out(
        fake_aci: FakeArmAci, field: str, value: object) -> None:
    with pytest.raises(SettingsError) as refused:
        AciSettings.from_env(budget_env(fake_aci, **{field: value}))
    said = str(refused.value)
    must = "a number of at least 0.001" if field == "create_rate" else "a whole number of at least 1"
    assert f"ACI_CELLS[1] (b): {field} must be {must}" in said, said
    deployments = "ACI_CREATE_RATE" if field == "create_rate" else "ACI_CREATE_BURST"
    assert f"leave it out for the deployment's {deployments}" in said, said


async def test_each_cells_bucket_is_made_at_its_own_budget_by_its_launches_and_its_creates(
        fake_aci: FakeArmAci) -> None:
    store = RecordedLimits()
    env = budget_env(fake_aci, create_rate=0.5, create_burst=150)
    machines = AciCellMachines(AciSettings.from_env(env), store, env)
    try:
        # Every ask for a cell's bucket (the cells' launches, the cell's own creates and deletes) names
        # one rate: the store never retunes it between them.
        assert store.rates("aci:a") == {(0.05, 40)}
        assert store.rates("aci:b") == {(0.5, 150)}
        assert machines.cells.rate.max_wait == 3.0
        spare = {cell: (await machines.cells.creates.look(among=(cell,))).spare for cell in ("a", "b")}
        assert spare["b"] - spare["a"] == 150 - 40  # each bucket holds its own burst
    finally:
        await machines.aclose()


async def test_the_fleet_planner_counts_on_the_slowest_cells_budget(fake_aci: FakeArmAci) -> None:
    env = {**budget_env(fake_aci, create_rate=0.02), "BOT_CHANNEL_URL": "wss://d.example/bots/channel"}
    machines = AciCellWarmMachines(AciSettings.from_env(env), LocalCoordination(), env)
    try:
        assert machines.create_rate == Rate(0.02, 40, 3.0)
        assert tiers_of(machines).create_per_second == 0.02
    finally:
        await machines.aclose()
    raised = {**env, "ACI_CELLS": budget_env(fake_aci, create_rate=0.5)["ACI_CELLS"]}
    machines = AciCellWarmMachines(AciSettings.from_env(raised), LocalCoordination(), raised)
    try:
        assert machines.create_rate == Rate(0.05, 40, 3.0)  # a raised cell adds nothing to the others' pace
    finally:
        await machines.aclose()


"""An Azure stack with `aciCells` (stacks/config/aci_cells.py), under Pulumi mocks: the list read as the dispatcher
reads ACI_CELLS and refused as it would be, naming the key; passed on as the JSON it reads; the store it needs made;
the dispatcher's identity given the stack's own launch role on each cell's resource group and nothing wider; what the
stack cannot make in a cell noted with its commands; the ceiling counted per subscription."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.machines.aci.cell_settings import aci_cells
from dispatcher.machines.aci.settings import AciSettings
from stacks.azure import identity
from stacks.config import ceiling, ceiling_cells, ceiling_notes
from stacks.config.settings import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.azure.test_stack import ASSIGNMENT, ROLE, env
from tests.infra.conftest import StackRunner

OWN = "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"  # the test stack's subscription (tests/infra/conftest.py)
OTHER = "11111111-1111-1111-1111-111111111111"
SUBNET_B = (f"/subscriptions/{OTHER}/resourceGroups/net-b/providers/Microsoft.Network/virtualNetworks/vf-b/"
            "subnets/bots")
CELLS: list[dict[str, Any]] = [
    {"name": "a", "subscription_id": OWN, "resource_group": "voicefleet-cell-a", "location": "westeurope"},
    {"name": "b", "subscription_id": OTHER, "resource_group": "voicefleet-cell-b", "location": "westeurope",
     "subnet_id": SUBNET_B, "max_groups": 90},
]


def cells_run(stack: StackRunner, cells: list[dict[str, Any]] = CELLS, **more: str) -> Run:
    return stack("azure", aciCells=json.dumps(cells), **more)


def plain(run: Run) -> dict[str, str]:
    return {name: e["value"] for name, e in env(run).items() if "value" in e}


def launch_role(run: Run, purpose: str = "launch") -> dict[str, Any]:
    """The stack's own launch role, or a cell's (`launch-cell-<name>`)."""
    (role,) = [r for r in run.of_type(ROLE) if r.name.endswith(f"-{purpose}")]
    return {**unwrap(role.inputs), "id": role.outputs["id"]}


def assigned(run: Run, role: dict[str, Any]) -> list[str]:
    return sorted(unwrap(a.inputs)["scope"] for a in run.of_type(ASSIGNMENT)
                  if unwrap(a.inputs)["roleDefinitionId"] == role["id"])


def test_the_dispatcher_reads_aci_cells_exactly_as_listed(stack: StackRunner) -> None:
    written = plain(cells_run(stack))
    assert aci_cells(written["ACI_CELLS"]) == aci_cells(json.dumps(CELLS))  # the dispatcher's own parser
    assert json.loads(written["ACI_CELLS"]) == CELLS
    # The dispatcher starts with what the stack gives it (its subnet's subscription beside the cells').
    settings = AciSettings.from_env({**written, "ACI_BOT_IMAGE": "r.azurecr.io/bot@sha256:" + "0" * 64,
                                     "ACI_SUBNET_ID": f"/subscriptions/{OWN}/resourceGroups/x/providers/"
                                                      "Microsoft.Network/virtualNetworks/v/subnets/bots"})
    assert [cell.name for cell in settings.cells] == ["a", "b"]


def test_without_cells_the_dispatcher_has_no_aci_cells_and_one_replica_no_store(azure: Run) -> None:
    assert "ACI_CELLS" not in plain(azure) and "REDIS_URL" not in plain(azure)


def test_cells_make_the_store_the_dispatcher_needs_for_them_with_one_replica(stack: StackRunner) -> None:
    run = cells_run(stack, dispatcherMaxReplicas="1", dispatcherMinReplicas="1")
    assert plain(run).get("REDIS_URL"), "ACI_CELLS needs the shared store: the dispatcher refuses to start without it"


def test_each_cell_has_a_launch_role_of_its_own_on_its_resource_group_and_nothing_wider(stack: StackRunner) -> None:
    run = cells_run(stack)
    group_id = run.one("azure-native:resources:ResourceGroup").outputs["id"]
    own = launch_role(run)
    assert own["assignableScopes"] == [group_id] and assigned(run, own) == [group_id]
    dispatcher = run.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-dispatcher")
    for cell in CELLS:
        scope = f"/subscriptions/{cell['subscription_id']}/resourceGroups/{cell['resource_group']}"
        role = launch_role(run, f"launch-cell-{cell['name']}")
        assert role["scope"] == scope and role["assignableScopes"] == [scope]  # never a subscription
        assert role["permissions"][0]["actions"] == list(identity.LAUNCH_ACTIONS) and assigned(run, role) == [scope]
        assert {unwrap(a.inputs)["principalId"] for a in run.of_type(ASSIGNMENT)
                if unwrap(a.inputs)["roleDefinitionId"] == role["id"]} == {dispatcher.outputs["principalId"]}


def test_a_cell_in_the_stacks_own_resource_group_adds_no_role_nor_assignment(stack: StackRunner) -> None:
    own = [{"name": "home", "subscription_id": OWN, "resource_group": "voicefleet-azure-test", "location":
            "westeurope"}, CELLS[1]]
    run = cells_run(stack, own)
    assert len(assigned(run, launch_role(run))) == 1
    assert not [r for r in run.of_type(ROLE) if r.name.endswith("-launch-cell-home")]


def test_a_stack_without_cells_keeps_its_one_launch_role_as_it_was(stack: StackRunner, azure: Run) -> None:
    """The roles a stack made before cells had roles of their own: the same names, the same inputs (no replace)."""
    with_cells = cells_run(stack)
    roles = {r.name: unwrap(r.inputs) for r in azure.of_type(ROLE)}
    assert roles == {r.name: unwrap(r.inputs) for r in with_cells.of_type(ROLE) if "-cell-" not in r.name}
    assert launch_role(azure)["assignableScopes"] == [azure.one("azure-native:resources:ResourceGroup").outputs["id"]]


def test_what_the_stack_cannot_make_in_a_cell_is_noted_with_its_commands(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    cells_run(stack)
    notes = [w for w in warned if w.startswith("aciCells cell ")]
    assert any(f"az group create --subscription {OTHER} --name voicefleet-cell-b --location westeurope" in n
               for n in notes)
    assert any(f"its subnet {SUBNET_B} delegated to Microsoft.ContainerInstance/containerGroups" in n for n in notes)


@pytest.mark.parametrize(("cells", "problem"), [
    ([{"name": "a", "subscription_id": "nope", "resource_group": "g", "location": "westeurope"}],
     "subscription_id must be a subscription's id"),
    ([CELLS[1], {**CELLS[1], "name": "c", "resource_group": "other"}], "names a subscription and location twice"),
    ([{**CELLS[0], "client_id": OTHER}], "cell a names a client_id"),
    ([{k: v for k, v in CELLS[1].items() if k != "subnet_id"}], "cell b (" + OTHER + ", westeurope) cannot join"),
    ([CELLS[0], {**CELLS[1], "create_rate": 0}], "ACI_CELLS[1] (b): create_rate must be a number of at least 0.001"),
])
def test_cells_the_dispatcher_would_refuse_are_refused_at_preview_naming_the_key(
        stack: StackRunner, cells: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        cells_run(stack, cells)
    assert "voicefleet:aciCells" in str(caught.value) and problem in str(caught.value)


def test_the_ceiling_counts_each_cells_budget_groups_and_cores() -> None:
    one = ceiling.aci("westeurope", 1024, 5)
    cells = aci_cells(json.dumps(CELLS))
    spread = ceiling_cells.aci_cells(cells, 1024, 5)
    assert [limit.figure for limit in spread.limits] == [limit.figure * 2 for limit in one.limits]
    assert [limit.bots for limit in spread.limits] == [limit.bots * 2 for limit in one.limits]
    assert "2 subscriptions (aciCells: a (" in spread.where
    assert all("aciCells" in limit.raise_it for limit in spread.limits)


def test_a_stack_files_ceiling_counts_each_cell_and_the_reserve_over_them() -> None:
    config = {"voicefleet:cloud": "azure", "azure-native:location": "westeurope", "voicefleet:botCpu": "1024",
              "voicefleet:maxConcurrentSessions": "200", "voicefleet:reserveMaxIdle": "5",
              "voicefleet:botChannel": "true", "voicefleet:aciCells": json.dumps(CELLS)}
    [note, *warnings] = ceiling_notes.stack_notes(config)
    assert "2 subscriptions (aciCells: a (" in note and "12 sessions" in note, note
    assert "195 sessions beside reserveMaxIdle=5" in note, note  # the reserve's groups and cores, as for one
    assert any("maxConcurrentSessions=200 + reserveMaxIdle=5 = 205 bots" in warning and "205 groups" in warning
               for warning in warnings), warnings
    alone = ceiling_notes.stack_notes({k: v for k, v in config.items() if k != "voicefleet:aciCells"})
    assert "6 sessions" in alone[0], alone


def test_the_ceiling_counts_a_cells_own_budget_in_place_of_the_documented_one() -> None:
    """Cell b states the budget Azure raised its subscription's to (0.5 creates and deletes a second): its
    launches are half of it, 0.25 a second, 75 sessions with 5-minute calls, beside a's default 8."""
    one = ceiling.aci("westeurope", 1024, 5)
    default = one.limits[0]
    raised = [CELLS[0], {**CELLS[1], "create_rate": 0.5, "create_burst": 150}]
    launches = ceiling_cells.aci_cells(aci_cells(json.dumps(raised)), 1024, 5).limits[0]
    assert launches.rate and launches.bots == default.bots + 75 == 83
    assert launches.figure == pytest.approx(default.figure + 0.25)
    assert launches.origin == f"{ceiling.ACCOUNT_DEFAULT}; b: {ceiling.STATED}"
    assert "b: 0.25 launches a second (its create_rate of 0.5 creates and deletes a second ÷ 2" in launches.how
    assert "that cell's create_rate in aciCells" in launches.raise_it
    shared = [{**CELLS[0], "create_rate": 0.02}, {**CELLS[1], "create_rate": 0.02}]  # other workloads take the rest
    both = ceiling_cells.aci_cells(aci_cells(json.dumps(shared)), 1024, 5).limits[0]
    assert both.bots == 2 * 3 and both.origin == ceiling.STATED and "a, b: 0.01 launches a second" in both.how
    [groups, cores] = ceiling_cells.aci_cells(aci_cells(json.dumps(raised)), 1024, 5).limits[1:]
    assert (groups.bots, cores.bots) == (200, 200)  # a budget is no quota: the groups and cores stay the same


def test_a_cells_budget_past_azures_documented_windows_is_said_with_how_to_raise_them() -> None:
    """ACI documents 100 creates per 5 minutes and 300 an hour for a subscription and location, each of creates and
    deletes; the dispatcher's default keeps within them with one budget for both. A stated budget past them is right
    only where Azure raised that subscription's: the ceiling says so (b's 0.5 a second and 150 at once lets 300
    through in 5 minutes), and says nothing of one within them (0.02 a second: 6 + 83, 72 + 83)."""
    raised = [CELLS[0], {**CELLS[1], "create_rate": 0.5, "create_burst": 150}]
    [said] = ceiling_cells.aci_cells(aci_cells(json.dumps(raised)), 1024, 5).needs
    assert said.startswith("aciCells cell b's create budget (0.5 a second, 150 at once) lets up to 300 in 5 minutes "
                           "(ACI documents 100) and 1,950 in an hour (ACI documents 300) creates and deletes"), said
    assert ceiling.ACI_SUPPORT_REQUEST in said and CELLS[1]["subscription_id"] in said
    within = [{**CELLS[0], "create_rate": 0.02}, CELLS[1]]
    assert ceiling_cells.aci_cells(aci_cells(json.dumps(within)), 1024, 5).needs == ()
    assert ceiling_cells.aci_cells(aci_cells(json.dumps(CELLS)), 1024, 5).needs == ()  # the dispatcher's default
    # A burst alone is checked with the default rate beside it, and only the window it passes is named.
    [burst] = ceiling_cells.aci_cells(aci_cells(json.dumps([{**CELLS[0], "create_burst": 90}, CELLS[1]])), 1024,
                                      5).needs
    assert "lets up to 107 in 5 minutes (ACI documents 100) creates" in burst and "an hour" not in burst, burst


def test_a_cells_own_budget_reaches_the_dispatcher_and_the_programs_ceiling(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.info", lambda message, *args, **kwargs: said.append(str(message)))
    raised = [CELLS[0], {**CELLS[1], "create_rate": 0.5, "create_burst": 150}]
    written = plain(cells_run(stack, raised, expectedCallMinutes="5"))
    assert json.loads(written["ACI_CELLS"])[1] == raised[1]
    settings = AciSettings.from_env({**written, "ACI_BOT_IMAGE": "r.azurecr.io/bot@sha256:" + "0" * 64})
    assert [(r.per_second, r.burst) for r in settings.cell_create_rates().values()] == [(1 / 18, 83), (0.5, 150)]
    [note] = [line for line in said if line.startswith("concurrency ceiling")]
    assert "83 sessions at once" in note, note

"""Container groups spread over two Azure subscriptions (ACI_CELLS), against the fake ARM holding each
subscription's own resource group, groups, buckets, create budget and role assignments: each session's
group is made in its home subscription and found, stopped and listed there; a subscription answering
429 (its create budget spent), a quota or a refused role is drained and the start goes to the other; a
retry at another replica meets its group through the store; a bot's credential is checked against the
group in its session's own subscription.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.aci.cells import AciCellMachines
from dispatcher.machines.aci.settings import AciSettings
from dispatcher.machines.base import MachinesError
from dispatcher.machines.cells import PartialListing
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.arm_aci import RESOURCE_GROUP, SUBSCRIPTION, FakeArmAci
from tests.support.cells import homed_in

OTHER = "11111111-1111-1111-1111-111111111111"  # cell b's subscription; cell a is the fake's own
LONG_DRAIN = 30.0  # a drained cell stays so 15-30 s: past anything a test does after it


def cells_env(fake: FakeArmAci, **extra: str) -> dict[str, str]:
    cells = [{"name": "a", "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "location": "westeurope"},
             {"name": "b", "subscription_id": OTHER, "resource_group": "vf-cell-b", "location": "westeurope"}]
    return {**fake.env, "ACI_RETRY_DEADLINE_SECONDS": "3", "ACI_CELLS": json.dumps(cells), **extra}


@pytest.fixture
def cell_b(fake_aci: FakeArmAci) -> FakeArmAci:
    return fake_aci.add_subscription(OTHER, "vf-cell-b")


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of a test shares."""
    return LocalCoordination()


def replica(fake: FakeArmAci, coordination: LocalCoordination, **env: str) -> AciCellMachines:
    merged = cells_env(fake, **env)
    return AciCellMachines(AciSettings.from_env(merged), coordination, merged, drain_base=LONG_DRAIN)


@pytest.fixture
async def machines(fake_aci: FakeArmAci, cell_b: FakeArmAci,
                   coordination: LocalCoordination) -> AsyncIterator[AciCellMachines]:
    provider = replica(fake_aci, coordination)
    yield provider
    await provider.aclose()


def calls_in(fake: FakeArmAci, method: str, subscription: str, name: str = "") -> int:
    """The calls ARM (the one endpoint serving every subscription) took for `subscription`'s groups."""
    return len([c for c in fake.calls_to(method, f"/subscriptions/{subscription}/resourceGroups/")
                if "/containerGroups" in c.path and name in c.path])


def drained(machines: AciCellMachines) -> dict[str, str | None]:
    return {view.name: view.reason for view in machines.views() if view.drained_until is not None}


async def test_each_session_runs_in_its_home_subscription_and_is_found_and_stopped_there(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    [in_a], [in_b] = homed_in(machines, "a"), homed_in(machines, "b")
    await machines.launch(spec(in_a))
    await machines.launch(spec(in_b))
    assert set(fake_aci.groups) == {f"vf-{in_a}"} and set(cell_b.groups) == {f"vf-{in_b}"}
    assert cell_b.groups[f"vf-{in_b}"]["id"].startswith(f"/subscriptions/{OTHER}/resourceGroups/vf-cell-b/")
    assert (await machines.status(in_b)) is not None
    assert await machines.stop(in_b)
    assert calls_in(fake_aci, "DELETE", OTHER, in_b) == 1 and not calls_in(fake_aci, "DELETE", SUBSCRIPTION)
    assert f"vf-{in_a}" in fake_aci.standing()


async def test_a_group_in_one_subscription_is_not_seen_from_another(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci, coordination: LocalCoordination) -> None:
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    one = replica(fake_aci, LocalCoordination())  # a dispatcher of cell a alone would not find it
    try:
        assert await one._members["a"].group(f"vf-{session}") is None
        assert await one._members["b"].group(f"vf-{session}") is not None
    finally:
        await one.aclose()


async def test_a_subscription_whose_create_budget_is_spent_is_drained_and_its_starts_go_to_the_other(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    fake_aci.changes.extend([time.time()] * 100)  # ACI's 100 creates and deletes in 5 minutes, spent in cell a
    first, second = homed_in(machines, "a", 2)
    await machines.launch(spec(first))
    assert f"vf-{first}" in cell_b.groups and not fake_aci.groups
    assert calls_in(fake_aci, "PUT", SUBSCRIPTION) == 1  # its 429 not retried where it throttles
    assert drained(machines) == {"a": "TooManyRequests"}
    await machines.launch(spec(second))  # the drained cell is not asked again
    assert calls_in(fake_aci, "PUT", SUBSCRIPTION) == 1 and f"vf-{second}" in cell_b.groups


async def test_a_subscription_at_its_group_quota_is_drained(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    cell_b.quota = 0
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    assert f"vf-{session}" in fake_aci.groups and drained(machines) == {"b": "ContainerGroupQuotaReached"}


async def test_a_resource_group_the_dispatcher_holds_no_role_on_is_drained(
        fake_aci: FakeArmAci, coordination: LocalCoordination) -> None:
    fake_aci.add_subscription(OTHER, "vf-cell-b", granted=False)
    machines = replica(fake_aci, coordination)
    try:
        [session] = homed_in(machines, "b")
        await machines.launch(spec(session))
        assert f"vf-{session}" in fake_aci.groups
        assert drained(machines) == {"b": "its role was refused (the dispatcher's log says how)"}
    finally:
        await machines.aclose()


async def test_the_dispatchers_own_sign_in_refused_drains_no_cell(
        fake_aci: FakeArmAci, cell_b: FakeArmAci, coordination: LocalCoordination) -> None:
    machines = replica(fake_aci, coordination, AZURE_CLIENT_SECRET="not-the-secret")  # Entra refuses it: 401
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec())
        assert refused.value.reason == "aci_unauthorized" and drained(machines) == {}
    finally:
        await machines.aclose()


async def test_every_cell_refusing_answers_503_naming_each(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    fake_aci.quota = cell_b.quota = 0
    with pytest.raises(MachinesError) as refused:
        await machines.launch(spec())
    assert refused.value.reason == "aci_cells_drained" and refused.value.retry_after is not None
    assert "a for" in refused.value.message and "b for" in refused.value.message


async def test_a_retry_at_another_replica_meets_the_group_in_the_cell_its_start_went_to(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci, coordination: LocalCoordination) -> None:
    fake_aci.quota = 0
    [session] = homed_in(machines, "a")
    await machines.launch(spec(session))  # went to b: a is full
    fake_aci.quota = 100
    other = replica(fake_aci, coordination)  # a replica that never saw a drained
    try:
        again = await other.launch(spec(session))
        assert not again.created and f"vf-{session}" not in fake_aci.groups
        assert await other.stop(session) and calls_in(fake_aci, "DELETE", OTHER, session) == 1
    finally:
        await other.aclose()


async def test_the_sweep_lists_every_cell_and_goes_on_without_one_that_does_not_answer(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    [in_a], [in_b] = homed_in(machines, "a"), homed_in(machines, "b")
    await machines.launch(spec(in_a))
    await machines.launch(spec(in_b))
    assert {m.session_id for m in await machines.list()} == {in_a, in_b}
    fake_aci.roles["client-1"].discard(cell_b.scope)  # cell b's role removed: its listing is refused
    listing = await machines.list()
    assert isinstance(listing, PartialListing) and listing.missing == ("b",)
    assert [m.session_id for m in listing] == [in_a]
    assert {v.name: v.unreadable for v in machines.views()}["b"] is not None


async def test_a_bots_credential_is_checked_against_its_group_in_its_sessions_cell(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    hello = Hello(machine_id="m", session_id=session)
    assert await machines.identity.refusal(BotGrant("session", session, 2**40), hello) is None
    [elsewhere] = homed_in(machines, "a")  # its group made in cell b by hand: not where its session is recorded
    cell_b.groups[f"vf-{elsewhere}"] = {**cell_b.groups[f"vf-{session}"], "name": f"vf-{elsewhere}",
                                        "tags": {"voicefleet-session": elsewhere}}
    refusal = await machines.identity.refusal(BotGrant("session", elsewhere, 2**40),
                                              Hello(machine_id="m", session_id=elsewhere))
    assert refusal is not None and "no container group" in refusal


@pytest.mark.parametrize(("cells", "said"), [
    ('[{"name": "a", "subscription_id": "x", "resource_group": "g", "location": "westeurope"}]',
     "ACI_CELLS[0] (a): subscription_id must be a subscription's id, a GUID"),
    ('[{"name": "a", "subscription_id": "' + OTHER + '", "location": "westeurope"}]',
     "ACI_CELLS[0] (a): resource_group is required"),
    ('[{"name": "a", "subscription_id": "' + OTHER + '", "resource_group": "g", "location": "westeurope"}, '
     '{"name": "b", "subscription_id": "' + OTHER.upper() + '", "resource_group": "h", "location": "westeurope"}]',
     "ACI_CELLS names a subscription and location twice"),
    ('[{"name": "a", "subscription_id": "' + OTHER + '", "resource_group": "g", "location": "westeurope", '
     '"client_id": "' + OTHER + '"}]', "names a client_id, but the dispatcher signs in as a service principal"),
])
def test_cells_the_dispatcher_cannot_use_are_refused_naming_the_way_forward(
        fake_aci: FakeArmAci, cells: str, said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        AciSettings.from_env({**fake_aci.env, "ACI_CELLS": cells})
    assert said in str(refused.value)


def test_a_cell_outside_the_deployments_network_needs_its_own_subnet(fake_aci: FakeArmAci) -> None:
    subnet = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/"
              "virtualNetworks/vf/subnets/bots")
    env = {**cells_env(fake_aci), "ACI_SUBNET_ID": subnet}
    with pytest.raises(SettingsError, match="ACI_CELLS cell b .* cannot join ACI_SUBNET_ID's network"):
        AciSettings.from_env(env)
    own = subnet.replace(SUBSCRIPTION, OTHER)
    cells = json.loads(env["ACI_CELLS"])
    cells[1]["subnet_id"] = own
    settings = AciSettings.from_env({**env, "ACI_CELLS": json.dumps(cells)})
    assert [settings.for_cell(c).subnet_id for c in settings.cells] == [subnet, own]


def test_the_config_check_names_a_cell_it_cannot_use_and_the_store_cells_need(fake_aci: FakeArmAci) -> None:
    from dispatcher.factory import configuration_problems

    base = {**cells_env(fake_aci), "DAILY_API_KEY": "k"}
    assert any("ACI_CELLS needs the shared store: set REDIS_URL" in p for p in configuration_problems(base))
    bad = configuration_problems({**base, "REDIS_URL": "redis://localhost:6379", "ACI_CELLS": '[{"name": "a"}]'})
    assert any("ACI_CELLS[0] (a): subscription_id is required" in p for p in bad), bad


async def test_a_cells_create_and_delete_spend_that_cells_own_budget(
        machines: AciCellMachines, fake_aci: FakeArmAci, cell_b: FakeArmAci, coordination: LocalCoordination) -> None:
    rate = machines.settings.create_rate

    async def spare(cell: str) -> int:
        return (await coordination.create_limit(f"aci:{cell}", rate.per_second, rate.burst).look()).spare

    before = {cell: await spare(cell) for cell in ("a", "b")}
    [session] = homed_in(machines, "b")
    await machines.launch(spec(session))
    await machines.stop(session)  # ACI counts a delete against the same budget as a create
    assert {cell: before[cell] - await spare(cell) for cell in ("a", "b")} == {"a": 0, "b": 2}

"""Hostile review of the warm reserve over ACI cells (dispatcher/machines/aci/cell_reserve.py over the shared
dispatcher/machines/cell_reserve.py, aci/cells.py `_group_of`): each test is a finding, strict-xfail until the
product is fixed. Same harness as test_aci_cell_reserve.py: the fake ARM holding each subscription's own
resource group, a dispatcher replica built from its environment.

ACI gives the bot no identity token naming its subscription (aci/identity.py): the dispatcher's idea of
which subscription holds a bot's group is the whole proof. Whoever may write container groups in one cell's
resource group (its subscription's Owner or Contributor, its CI) can PUT a group of any name and tags there.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import MachinesError
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.test_aci_cell_reserve import (  # noqa: F401 - the cell_b fixture
    IDLE_PREFIX,
    cell_b,
    idle_groups,
    other_replica,
    replica,
    reserve_env,
    warm_in_a_with_a_look_alike_in_b,
)
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.arm_aci import RESOURCE_GROUP, SUBSCRIPTION, FakeArmAci

# ruff: noqa: F811 - the tests take the cell_b fixture, imported from test_aci_cell_reserve, as an argument


async def test_a_listing_at_another_replica_never_sends_a_bots_hello_to_a_look_alike_in_a_later_cell(
        fake_aci: FakeArmAci, cell_b: FakeArmAci) -> None:
    """Cell a's reserve bot, and a copy of its group (`<prefix>-idle-<id>`, the idle and prefix tags) PUT in
    cell b's resource group by an admin of b's subscription. At a replica that did not launch it, asked
    before any listing, the bot is refused ("every cell is asked; two such cells: refused in both",
    cell_reserve.py). But every replica lists the reserve (each refill, the sweep): after that listing the
    replica takes b (listed after a) as the bot's cell and asks nobody else. The real bot's hello, with its
    own credential, is then admitted against b's look-alike, `proved` pins it to b (`_sure`), and its claim
    re-tags b's group and records the session in b: `stop` deletes b's copy and leaves a's group, which
    serves the call, tagged idle and running; b's admin reads (and writes) the session's status. The bot
    needs nothing from b's admin: only its id (in the dispatcher's logs). Fix: a listing that finds a bot
    id in two cells records it in neither (and logs it), as `_cell_of_bot` does."""
    env = reserve_env(fake_aci)
    async with replica(env) as (state, _):
        assert state.reserve is not None
        bot_id = await warm_in_a_with_a_look_alike_in_b(state, fake_aci, cell_b)
        name = IDLE_PREFIX + bot_id
        grant = BotGrant("idle", bot_id, int(time.time()) + 60)
        hello = Hello(machine_id=bot_id)
        late = other_replica(env, state)
        try:
            before = await late.identity.refusal(grant, hello)
            assert before is not None  # asked of every cell: held in two, refused (as documented)
            await late.idle_machines()  # this replica's reserve lists the cells, as each refill does
            refused = await late.identity.refusal(grant, hello)
            assert refused is not None, "the bot was admitted against cell b's look-alike of its group"
            s = spec()
            with contextlib.suppress(MachinesError):  # refused, or claimed in a: never b's copy
                await late.adopt(bot_id, s)
            assert "voicefleet-session" not in cell_b.groups[name]["tags"], "the claim re-tagged b's look-alike"
        finally:
            await late.aclose()


@pytest.mark.parametrize("group_b", [RESOURCE_GROUP, RESOURCE_GROUP.upper()])  # Azure's names ignore case
async def test_two_cells_of_one_resource_group_in_two_locations_are_refused_at_load(
        fake_aci: FakeArmAci, group_b: str) -> None:
    """A resource group's location is where its metadata lives; its resources may be in other regions (the
    Azure Proactive Resiliency Library's RG-1 lists the resources "deployed in a region different than the
    Resource Group region": azure.github.io/Azure-Proactive-Resiliency-Library/services/management/
    resource-group), and ACI's create budget and quotas are a subscription's per region, so one
    subscription's group serving westeurope and northeurope looks like two cells. But the container groups'
    list and GET are the resource group's, not a location's: each cell's `holds_idle` would find the
    other's reserve group, so a bot dialling a replica that did not launch it is "held by two cells" and
    refused, and each cell's listing counts every reserve group of both. So such a list is refused when the
    dispatcher loads it, naming the way: a resource group per cell (docs/operations.md)."""
    cells = [{"name": name, "subscription_id": SUBSCRIPTION, "resource_group": group, "location": location}
             for name, group, location in (("we", RESOURCE_GROUP, "westeurope"), ("ne", group_b, "northeurope"))]
    env = {**reserve_env(fake_aci), "ACI_CELLS": json.dumps(cells)}
    with pytest.raises(SettingsError) as refused:
        async with replica(env):
            pass
    assert "cells we and ne share the resource group" in str(refused.value)
    assert "its own resource group" in str(refused.value) and "az group create" in str(refused.value)

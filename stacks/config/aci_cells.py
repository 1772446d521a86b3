"""`aciCells`: the Azure subscriptions a stack's container groups spread over (the dispatcher's ACI_CELLS).

Each cell is a subscription's resource group in a location, with ACI's own create budget (100 per 5
minutes, 300 an hour, or what the cell states: `create_rate`, `create_burst`) and quotas there
(dispatcher/machines/aci/cells.py). The stack reads the list
as the dispatcher reads ACI_CELLS (one parser, stacks/config/cells.py), passes it on, makes the store
the dispatcher needs for it (each session's cell is recorded there), assigns the dispatcher's identity
a launch role of the cell's own on each cell's resource group and nothing wider and a join role on a
cell's own subnet (stacks/azure/identity.py), assigns the launch policy there (stacks/azure/
launch_policy.py), counts each cell in the ceiling (stacks/config/ceiling_cells.py) and says what it
cannot make there (`unmade`): the resource group, a network and the quota raises.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.machines.aci.cell_settings import AciCell, aci_cells
from stacks.config import cells as stack_cells
from stacks.config.reader import Reader

CELLS_KEY = "aciCells"
RUNTIME = "aci"  # the Azure stack's bots are container groups: its only runtime


def cells(cfg: Reader, subscription: str, location: str) -> tuple[AciCell, ...]:
    """The subscriptions `aciCells` lists, read as the dispatcher reads ACI_CELLS, and refused here where
    the dispatcher would refuse them with the stack's own values (`subscription`, `location`: the stack's):
    a cell's `client_id` (the dispatcher signs in as the stack's identity, given a role on each cell) and a
    cell elsewhere than the bots' subnet without a subnet of its own."""
    listed = stack_cells.read(cfg, CELLS_KEY, aci_cells, runtime=RUNTIME, bot_runtime=RUNTIME,
                              otherwise="another runtime has cells keys of its own")
    for cell in listed:
        if cell.client_id is not None:
            raise cfg.fail(CELLS_KEY, f"cell {cell.name} names a client_id: the stack's dispatcher signs in as its "
                                      "own identity, which the stack gives its launch role on each cell's resource "
                                      "group; remove client_id")
        if cell.subnet_id is None and (cell.subscription_id.lower(), cell.location) != (subscription, location):
            raise cfg.fail(CELLS_KEY, f"cell {cell.name} ({cell.subscription_id}, {cell.location}) cannot join the "
                                      f"stack's bots' subnet ({subscription}, {location}): set its subnet_id to a "
                                      "subnet delegated to Microsoft.ContainerInstance/containerGroups in its own "
                                      "subscription and location (docs/operations.md, Setting up ACI cells)")
    return listed


def listed(setting: str) -> tuple[AciCell, ...]:
    """The cells of an ACI_CELLS value the stack's settings hold (`cells_setting`'s, checked: "" none)."""
    return aci_cells(setting) if setting else ()


def from_file(text: str) -> tuple[AciCell, ...] | None:
    """The cells a stack file's `aciCells` lists (() none); None: a list the dispatcher would refuse."""
    return stack_cells.from_file(text, aci_cells)


def cells_setting(listed: Sequence[AciCell]) -> str:
    """ACI_CELLS for the dispatcher: the cells as JSON, each with the fields it set."""
    return stack_cells.setting(listed)


def unmade(listed: Sequence[AciCell], stack_scope: str) -> list[str]:
    """What the stack does not make in a cell of another resource group than its own (`stack_scope`), each
    with its command: the resource group (the role assignments and the launch policy need it first) and
    the cell's own subnet (the stack assigns the dispatcher's join there, a role holding the join action
    alone, defined on the subnet's resource group)."""
    said = []
    for cell in listed:
        if cell.scope.lower() == stack_scope.lower():
            continue
        said.append(f"cell {cell.name}: before `pulumi up`, `az group create --subscription {cell.subscription_id} "
                    f"--name {cell.resource_group} --location {cell.location}` (the stack assigns the dispatcher's "
                    "launch role and the launch policy there, and its operator needs Owner, or User Access "
                    "Administrator and Resource Policy Contributor, on it)")
        if cell.subnet_id is not None:
            said.append(f"cell {cell.name}: before `pulumi up`, its subnet {cell.subnet_id} delegated to "
                        "Microsoft.ContainerInstance/containerGroups and peered with the stack's network if its "
                        "bots reach the stack's private endpoints (the stack assigns the dispatcher a role holding "
                        "Microsoft.Network/virtualNetworks/subnets/join/action alone on it, defined on the "
                        "subnet's resource group: its operator needs User Access Administrator there)")
    return said

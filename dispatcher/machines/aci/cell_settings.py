"""`ACI_CELLS`: the Azure subscriptions a deployment's container groups spread over, as a JSON list.

Each cell names its `subscription_id`, the `resource_group` its groups go in (its own: no other cell's)
and its `location` (ACI's create budget, 100 per 5 minutes and 300 an hour, and its quotas are per
subscription and region), and may name `client_id` (a user-assigned managed identity of the dispatcher's host to sign
in as there: else the dispatcher's own, AZURE_CLIENT_ID, given a role on that resource group alone),
`subnet_id` (a subnet delegated to ACI in that subscription and location: a cell elsewhere than
ACI_SUBNET_ID's needs its own), `max_groups`, the most groups the cell runs, every replica's
(a soft cap read at each listing, under the subscription's quotas; unset: the quotas alone), and
`create_rate` / `create_burst`, the cell's own create budget (creates and deletes a second, and its
burst: a subscription whose budget Azure raised, or one other workloads share) where it is not
ACI_CREATE_RATE / ACI_CREATE_BURST; a cold start's wait (ACI_CREATE_MAX_WAIT) is the deployment's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.machines.cell_list import (
    cell_fields,
    cell_items,
    matching_field,
    named_once,
    positive_number,
    whole_number,
)
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError

# Azure's own forms: a subscription id is a GUID; a resource group 1-90 letters, digits, '_', '-', '.',
# '(' or ')', not ending in '.'; a location its short name ("westeurope"); a client id a GUID.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]", re.ASCII)
_LOCATION = re.compile(r"[a-z][a-z0-9]{1,39}")
_SUBNET = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})/resourceGroups/[^/]+/providers/Microsoft\.Network/"
                     r"virtualNetworks/[^/]+/subnets/[^/]+")
MIN_CREATE_RATE = 0.001  # ACI_CREATE_RATE's own floor (voicefleet_settings/catalogue.py)
FIELDS = ("name", "subscription_id", "resource_group", "location", "client_id", "subnet_id", "max_groups",
          "create_rate", "create_burst")
# A budget field refused: what it counts, and the way out (leave it out for the deployment's).
_OWN_BUDGET = (" ({what}: the cell's own create budget, e.g. the figure Azure raised its subscription's to, or "
               "less where other workloads share it); leave it out for the deployment's {setting}")
EXAMPLE = ('[{"name": "a", "subscription_id": "11111111-1111-1111-1111-111111111111", "resource_group": '
           '"voicefleet-cell-a", "location": "westeurope"}]')


@dataclass(frozen=True)
class AciCell:
    name: str
    subscription_id: str
    resource_group: str
    location: str
    client_id: str | None = None
    subnet_id: str | None = None
    max_groups: int | None = None
    create_rate: float | None = None  # creates and deletes a second; None: ACI_CREATE_RATE
    create_burst: int | None = None  # None: ACI_CREATE_BURST

    @property
    def scope(self) -> str:
        """The ARM scope the dispatcher's role is granted on: the cell's resource group."""
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def create_budget(self, deployment: Rate) -> Rate:
        """The rate the cell's `aci:<cell>` bucket refills at: its own rate and burst, each where it sets
        one, else the `deployment`'s (ACI_CREATE_*), whose max wait every cell keeps."""
        return replace(deployment,
                       per_second=deployment.per_second if self.create_rate is None else self.create_rate,
                       burst=deployment.burst if self.create_burst is None else self.create_burst)


def aci_cells(raw: str) -> tuple[AciCell, ...]:
    """The cells `ACI_CELLS` lists (empty: the one subscription AZURE_SUBSCRIPTION_ID names)."""
    items = cell_items("ACI_CELLS", raw, EXAMPLE, "Azure subscription and location")
    cells = tuple(_cell(item, i) for i, item in enumerate(items))
    named_once("ACI_CELLS", {"a cell": [c.name for c in cells],
                             "a subscription and location": [f"{c.subscription_id.lower()} {c.location}"
                                                             for c in cells]},
               "Azure subscription and location", "ACI's create budget and quotas in a region are the "
               "subscription's, not doubled by listing it twice")
    _own_resource_groups(cells)
    return cells


def _own_resource_groups(cells: tuple[AciCell, ...]) -> None:
    """Refuses two cells sharing a resource group (names are case-insensitive): ARM lists and reads a
    resource group's container groups whatever their location, so each cell would hold the other's."""
    seen: dict[str, str] = {}
    for cell in cells:
        key = cell.scope.lower()
        if (first := seen.setdefault(key, cell.name)) != cell.name:
            raise SettingsError(f"ACI_CELLS: cells {first} and {cell.name} share the resource group "
                                f"{cell.resource_group} of subscription {cell.subscription_id}: each cell reads and "
                                "lists its whole resource group, whatever the location, so each would hold the "
                                "other's container groups. Give each cell its own resource group, e.g. `az group "
                                f"create --subscription {cell.subscription_id} --name {cell.resource_group}-"
                                f"{cell.location} --location {cell.location}`")


def subnet_subscription(subnet_id: str) -> str | None:
    """The subscription a subnet's resource id names (None: not a subnet's id)."""
    match = _SUBNET.fullmatch(subnet_id)
    return match[1].lower() if match is not None else None


def _cell(item: Any, index: int) -> AciCell:
    where = f"ACI_CELLS[{index}]"
    item = cell_fields(item, where, FIELDS, EXAMPLE, "name, subscription_id, resource_group and location")
    name = item["name"]
    required = {key: item.get(key) for key in ("subscription_id", "resource_group", "location")}
    if missing := [key for key, value in required.items() if value is None]:
        raise SettingsError(f"{where} ({name}): {missing[0]} is required (a cell is a subscription's resource "
                            f"group in a location), e.g. {EXAMPLE}")
    guid = "a subscription's id, a GUID (`az account show --query id`)"
    subscription = matching_field(item, "subscription_id", where, _GUID, guid)
    group = matching_field(item, "resource_group", where, _RESOURCE_GROUP, "a resource group's name (1-90 letters, "
                           "digits, '_', '-', '.', '(' or ')', not ending in '.')")
    location = matching_field(item, "location", where, _LOCATION, "an Azure location's short name, e.g. "
                              "\"westeurope\" (`az account list-locations --query [].name`)")
    client = matching_field(item, "client_id", where, _GUID, "a user-assigned managed identity's client id, a GUID "
                            "(`az identity show --query clientId`)")
    subnet = matching_field(item, "subnet_id", where, _SUBNET, "a subnet's resource id, /subscriptions/<id>/"
                            "resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<name>")
    if subnet is not None and subnet_subscription(subnet) != str(subscription).lower():
        raise SettingsError(f"{where} ({name}): subnet_id must be a subnet in the cell's own subscription "
                            f"{subscription} (a container group joins a network of its own subscription and location)")
    assert subscription is not None and group is not None and location is not None  # required, above
    named = f"{where} ({name})"
    return AciCell(name=name, subscription_id=subscription, resource_group=group, location=location,
                   client_id=client, subnet_id=subnet, max_groups=whole_number(item, "max_groups", named),
                   create_rate=positive_number(item, "create_rate", named, _OWN_BUDGET.format(
                       what="creates and deletes a second", setting="ACI_CREATE_RATE"), minimum=MIN_CREATE_RATE),
                   create_burst=whole_number(item, "create_burst", named, _OWN_BUDGET.format(
                       what="the creates it may make at once", setting="ACI_CREATE_BURST")))

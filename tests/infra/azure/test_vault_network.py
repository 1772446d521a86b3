"""Key Vault off the internet (its private endpoint, an explicit address list at most), what must reach
it waiting for that endpoint, and the delete locks a protected stack puts on its stateful resources."""

from __future__ import annotations

import pytest

from stacks.azure.network import subnet_ranges
from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import SECRETS, StackRunner

VAULT = "azure-native:keyvault:Vault"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
LOCK = "azure-native:authorization:ManagementLockByScope"
STACK = "voicefleet-azure-test"


def vault(run: Run) -> dict:  # type: ignore[type-arg]
    return unwrap(run.one(VAULT).inputs)["properties"]


def test_the_vault_answers_its_private_endpoint_only(azure: Run) -> None:
    properties = vault(azure)
    assert properties["publicNetworkAccess"] == "Disabled"
    assert properties["networkAcls"] == {"bypass": "AzureServices", "defaultAction": "Deny", "ipRules": [],
                                         "virtualNetworkRules": []}
    endpoint = unwrap(azure.one(ENDPOINT, STACK).inputs)
    (connection,) = endpoint["privateLinkServiceConnections"]
    assert connection["groupIds"] == ["vault"] and connection["privateLinkServiceId"] == azure.one(VAULT).outputs["id"]
    assert endpoint["subnet"]["id"].endswith("/subnets/store")
    zone = unwrap(azure.one("azure-native:privatedns:PrivateZone", STACK).inputs)
    assert zone["privateZoneName"] == "privatelink.vaultcore.azure.net"
    link = unwrap(azure.one("azure-native:privatedns:VirtualNetworkLink", STACK).inputs)
    assert link["virtualNetwork"]["id"] == azure.one("azure-native:network:VirtualNetwork").outputs["id"]


def test_listed_addresses_reach_the_vault_and_nothing_else_from_outside(stack: StackRunner) -> None:
    run = stack("azure", azureKeyVaultAllowedIps='["52.174.10.7", "20.50.0.0/24"]')
    properties = vault(run)
    assert properties["publicNetworkAccess"] == "Enabled" and properties["networkAcls"]["defaultAction"] == "Deny"
    assert properties["networkAcls"]["ipRules"] == [{"value": "52.174.10.7"}, {"value": "20.50.0.0/24"}]


@pytest.mark.parametrize("value", ['["10.0.0.1"]', '["not-an-address"]', '["2001:db8::1"]'])
def test_a_private_or_malformed_allowed_address_is_refused_naming_the_key(stack: StackRunner, value: str) -> None:
    with pytest.raises(SettingsError, match="voicefleet:azureKeyVaultAllowedIps"):
        stack("azure", azureKeyVaultAllowedIps=value)


def test_the_app_waits_for_the_vaults_private_name(azure: Run) -> None:
    """Its Key Vault references and its reads of the bots' secrets go through the endpoint: the first
    revision would fail while the vault's name still resolved to its closed public address."""
    waited = {azure.one(ZONE_GROUP, STACK).urn, azure.one("azure-native:privatedns:VirtualNetworkLink", STACK).urn}
    assert waited <= set(azure.one("azure-native:app:ContainerApp").dependencies)


def test_the_relay_boots_after_the_vaults_private_name_and_reaches_it_alone_on_443(relay: Run) -> None:
    vm = relay.one("azure-native:compute:VirtualMachine")
    assert relay.one(ZONE_GROUP, STACK).urn in vm.dependencies
    group = next(r for r in relay.of_type("azure-native:network:NetworkSecurityGroup") if r.name.endswith("-turn"))
    out = [r for r in unwrap(group.inputs)["securityRules"] if r["direction"] == "Outbound" and r["access"] == "Allow"]
    by_port = {(r["protocol"], r["destinationPortRange"]): r["destinationAddressPrefix"] for r in out}
    # Key Vault's endpoint subnet only; apt's mirror over http; relayed media over UDP.
    assert by_port == {("Tcp", "443"): subnet_ranges("10.60.0.0/16")["store"], ("Tcp", "80"): "Internet",
                       ("Udp", "*"): "Internet"}


def test_a_protected_stack_locks_its_registry_vault_and_store_against_deletion(stack: StackRunner) -> None:
    run = stack("azure", protect="true", dispatcherMinReplicas="2", dispatcherMaxReplicas="4",
                secrets={**SECRETS})
    locks = {r.name: r for r in run.of_type(LOCK)}
    scopes = {
        f"{STACK}-registry-lock": run.one("azure-native:containerregistry:Registry").outputs["id"],
        f"{STACK}-vault-lock": run.one(VAULT).outputs["id"],
        f"{STACK}-store-lock": run.one("azure-native:redisenterprise:RedisEnterprise").outputs["id"],
    }
    assert {name: unwrap(lock.inputs)["scope"] for name, lock in locks.items()} == scopes
    assert all(unwrap(lock.inputs)["level"] == "CanNotDelete" and lock.protect for lock in locks.values())
    # A lock refuses deleting what is under its resource too: a destroy deletes it before those.
    under = {"vault": [run.one(ZONE_GROUP, STACK)],
             "store": [run.one(ZONE_GROUP, f"{STACK}-store"), run.one("azure-native:redisenterprise:Database")]}
    for what, children in under.items():
        assert {c.urn for c in children} <= set(locks[f"{STACK}-{what}-lock"].dependencies), what


def test_an_unprotected_stack_has_no_lock(azure: Run) -> None:
    assert not azure.of_type(LOCK)

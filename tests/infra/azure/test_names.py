"""Azure's globally unique names fit their rules for every stack name the settings accept, and the
preflight refuses one that does not."""

from __future__ import annotations

import re

from stacks.azure import naming
from stacks.config.settings import MAX_STACK_NAME
from stacks.tools.mocks import Registration
from stacks.tools.preflight import names

SUBSCRIPTION = "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
LONGEST = "a" + "-b" * ((MAX_STACK_NAME - 1) // 2)  # 19-20 characters, dashes wherever allowed


def registration(typ: str, **inputs: str) -> Registration:
    return Registration(urn=f"urn:pulumi:s::p::{typ}::r", type=typ, name="r", inputs=dict(inputs), custom=True,
                        provider="", parent="", protect=False)


def test_the_longest_stack_names_fit_azures_rules() -> None:
    prefix = f"voicefleet-{LONGEST}"
    found = names.violations([
        registration("azure-native:containerregistry:Registry",
                     registryName=naming.registry_name(SUBSCRIPTION, prefix)),
        registration("azure-native:keyvault:Vault", vaultName=naming.key_vault_name(SUBSCRIPTION, LONGEST)),
        registration("azure-native:app:ContainerApp", containerAppName=naming.container_app_name(LONGEST)),
        registration("azure-native:redisenterprise:RedisEnterprise",
                     clusterName=naming.redis_name(SUBSCRIPTION, prefix)),
    ])
    assert found == []


def test_the_same_stack_in_another_subscription_gets_other_global_names() -> None:
    other = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    assert naming.registry_name(SUBSCRIPTION, "voicefleet-prod") != naming.registry_name(other, "voicefleet-prod")
    assert naming.key_vault_name(SUBSCRIPTION, "prod") != naming.key_vault_name(other, "prod")
    assert re.fullmatch(r"[a-z0-9]{5,50}", naming.registry_name(SUBSCRIPTION, "voicefleet-prod"))


def test_the_preflight_refuses_names_azure_would() -> None:
    found = names.violations([
        registration("azure-native:containerregistry:Registry", registryName="vf-dev"),
        registration("azure-native:keyvault:Vault", vaultName="vf-" + "x" * 22),
        registration("azure-native:keyvault:Vault", vaultName="vf--dev"),
    ])
    assert len(found) == 3 and all("resource-name-rules" in line for line in found)

"""A planned config change that a cloud refuses once the resource exists (stacks/tools/preflight/immutable.py):
the Key Vault's soft-delete retention and purge protection. The documented pre-destroy step (`protect:
false`) must not touch either; a change of their own keys is refused at the plan, not halfway through
an `up`."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Registration
from stacks.tools.plan import checked_plan
from stacks.tools.preflight import immutable
from tests.infra.conftest import StackRunner

PROD = {"protect": "true", "azureKeyVaultPurgeProtection": "true"}


def test_lifting_protect_changes_nothing_azure_refuses_to_change(stack: StackRunner) -> None:
    deployed = stack("azure", **PROD)
    lifted = stack("azure", **{**PROD, "protect": "false"})
    assert immutable.violations(deployed.registrations, lifted.registrations, {"protect": "false"}) == []


def test_a_changed_retention_is_refused_naming_the_property(stack: StackRunner) -> None:
    deployed, changed = stack("azure"), stack("azure", azureKeyVaultRetentionDays="30")
    (found,) = immutable.violations(deployed.registrations, changed.registrations,
                                    {"azureKeyVaultRetentionDays": "30"})
    assert "softDeleteRetentionInDays from 90" in found and "azureKeyVaultRetentionDays=30" in found


def test_purge_protection_may_be_turned_on_but_not_off(stack: StackRunner) -> None:
    off, on = stack("azure"), stack("azure", azureKeyVaultPurgeProtection="true")
    assert immutable.violations(off.registrations, on.registrations, {"azureKeyVaultPurgeProtection": "true"}) == []
    (found,) = immutable.violations(on.registrations, off.registrations, {"azureKeyVaultPurgeProtection": "false"})
    assert "enablePurgeProtection" in found


@pytest.mark.parametrize("days", ["6", "91"])
def test_a_retention_azure_does_not_accept_is_refused_naming_the_key(stack: StackRunner, days: str) -> None:
    with pytest.raises(SettingsError, match="voicefleet:azureKeyVaultRetentionDays must be"):
        stack("azure", azureKeyVaultRetentionDays=days)


def test_the_plan_refuses_a_config_change_azure_would_refuse() -> None:
    """`python -m stacks.plan azure-dev --config …`: the stack file stands for what is deployed."""
    _, problems, _ = checked_plan("azure-dev", {"azureKeyVaultRetentionDays": "30"})
    assert [p for p in problems if "softDeleteRetentionInDays from 7 to 30" in p] and len(problems) == 1


def _sent(deployed: Registration, planned: Registration) -> Registration:
    """The inputs the engine sends on update: each `ignore_changes` path keeps its deployed value."""
    inputs = {**planned.inputs}
    for path in planned.ignore_changes:
        top, _, rest = path.partition(".")
        if rest:
            inputs[top] = {**inputs[top], rest: deployed.inputs[top][rest]}
        else:
            inputs[top] = deployed.inputs[top]
    return Registration(**{**planned.__dict__, "inputs": inputs})


@pytest.mark.parametrize(("protect", "created_with"), [("false", "7"), ("true", "90")])
def test_a_vault_created_when_retention_followed_protect_upgrades(stack: StackRunner, protect: str,
                                                                  created_with: str) -> None:
    """A stack deployed by a release where the retention followed `protect` (7 days unprotected, 90
    protected), whose file has no azureKeyVaultRetentionDays: its next `up` must not send ARM another
    retention (the key's default, 90, differs for every unprotected stack but azure-dev)."""
    vault = "azure-native:keyvault:Vault"
    (old,) = (r for r in stack("azure", protect=protect, azureKeyVaultRetentionDays=created_with).registrations
              if r.type == vault)
    (new,) = (r for r in stack("azure", protect=protect).registrations if r.type == vault)
    assert immutable.violations([old], [_sent(old, new)], {"(upgrade)": "no key"}) == []

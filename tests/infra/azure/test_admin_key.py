"""Azure: the admin surface's key reaches the dispatcher only as a Key Vault reference, and no bot may read it.

DISPATCHER_ADMIN_KEYS is a vault secret the Container App names in `configuration.secrets` (its
versioned URI, read with the dispatcher's identity) and its container as a `secretRef`; Key Vault
Secrets User on that one secret goes to the dispatcher's identity alone. The bots' identity (and the
relay's) gets no role on it, and nothing grants a role on the whole vault but the deployer's.
"""

from __future__ import annotations

from stacks.tools.mocks import Run, unwrap
from tests.infra.azure.test_stack import APP, ASSIGNMENT, SECRET, app, env, env_identity
from tests.infra.conftest import ADMIN_KEY, SECRETS, StackRunner
from tests.infra.helpers import changed_names, holding

NAME = "voicefleet-azure-test-dispatcher-admin-keys"


def identity(run: Run, role: str) -> dict[str, str]:
    return run.one("azure-native:managedidentity:UserAssignedIdentity", f"voicefleet-azure-test-{role}").outputs


def test_the_dispatcher_reads_the_admin_key_as_a_versioned_vault_reference(full: Run) -> None:
    references = {s["name"]: s for s in app(full)["configuration"]["secrets"]}
    reference = references["dispatcher-admin-keys"]
    assert reference["identity"] == env_identity(full)
    assert reference["keyVaultUrl"] == full.one(SECRET, NAME).outputs["properties"]["secretUriWithVersion"]
    assert env(full)["DISPATCHER_ADMIN_KEYS"] == {"name": "DISPATCHER_ADMIN_KEYS", "secretRef": "dispatcher-admin-keys"}
    # The value itself is written once, into its vault secret.
    assert [r.type for r in holding(full, ADMIN_KEY)] == [SECRET]


def test_only_the_dispatchers_identity_may_read_the_admin_key(full: Run) -> None:
    """`full` has bot secrets and a TURN relay, so the bots' and the relay's identities exist and read
    secrets of their own (by the dispatcher, or the relay's own grant)."""
    secret = full.one(SECRET, NAME).outputs["id"]
    readers = {unwrap(a.inputs)["principalId"] for a in full.of_type(ASSIGNMENT) if unwrap(a.inputs)["scope"] == secret}
    assert readers == {identity(full, "dispatcher")["principalId"]}
    vault = full.one("azure-native:keyvault:Vault").outputs["id"]
    on_vault = [a.name for a in full.of_type(ASSIGNMENT) if unwrap(a.inputs)["scope"] == vault]
    assert on_vault == ["voicefleet-azure-test-deployer"]
    bot = identity(full, "bot")["principalId"]
    assert all(unwrap(a.inputs)["scope"] != secret for a in full.of_type(ASSIGNMENT)
               if unwrap(a.inputs)["principalId"] == bot)
    assert "DISPATCHER_ADMIN_KEYS" not in env(full)["ACI_BOT_SECRETS"]["value"]


def test_a_second_up_changes_nothing_and_a_new_admin_key_only_its_vault_secret_and_the_app(stack: StackRunner) -> None:
    first = stack("azure")
    assert changed_names(first, stack("azure")) == []
    rotated = stack("azure", secrets={**SECRETS, "voicefleet:dispatcherAdminKeys": "SENTINEL-admin-key-rotated-77aa"})
    # A new version of the same vault secret, and the app's pinned reference to it: a new revision.
    assert changed_names(first, rotated) == [(APP, "voicefleet-azure-test-dispatcher"), (SECRET, NAME)]

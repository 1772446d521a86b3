"""Properties a cloud refuses to change once the resource exists, and a planned config change that would.

`python -m stacks.plan <stack> --config KEY=VALUE` plans the stack with a value not yet set; the
stack file's own configuration stands for what is deployed. Mocks accept any update, so the plan
compares the two runs itself and refuses the change before `pulumi up` meets the cloud's refusal
halfway through (other resources already updated):
- Key Vault `softDeleteRetentionInDays`: "Once set, the retention policy interval cannot be changed"
  (Key Vault's soft-delete overview, quoted in MicrosoftDocs/azure-docs#110047); ARM answers a changed
  value with BadRequest "The property \"softDeleteRetentionInDays\" has been set already and it can't
  be modified" (quoted by terraform-provider-azurerm `internal/services/keyvault/key_vault_resource.go`).
  pulumi-azure-native updates a vault with a full PUT, so the stack ignores a change to it
  (stacks/azure/secrets.py `RETENTION`): a changed key would silently not apply, refused here instead.
- Key Vault `enablePurgeProtection`: "Enabling this functionality is irreversible - that is, the
  property does not accept false as its value" (pulumi_azure_native/keyvault/_inputs.py
  VaultPropertiesArgs); turning it on later is allowed.
- Azure Storage `immutableStorageWithVersioning.enabled` (the recording account's `recordingHold`):
  "The property is immutable and can only be set to true at the account creation time"
  (pulumi_azure_native/storage/storage_account.py `immutable_storage_with_versioning`). The
  program refuses both from its last outputs too (stacks/shared/recording_last_up.py); an S3 bucket's
  Object Lock is its own resource, which S3 takes on an existing bucket (stacks/aws/recordings.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from stacks.tools.mocks import Registration, unwrap

VAULT = "azure-native:keyvault:Vault"
ACCOUNT = "azure-native:storage:StorageAccount"
# (type, property path) -> why it can never change.
IMMUTABLE: dict[tuple[str, str], str] = {
    (ACCOUNT, "immutableStorageWithVersioning.enabled"): "Azure sets a storage account's version-level immutability "
                                                         "only as the account is made, and never turns it off "
                                                         "(docs/recording.md, \"Changing the recording store\")",
    (VAULT, "properties.softDeleteRetentionInDays"): "Azure refuses to change a vault's soft-delete retention "
                                                     "once it is set",
}
# (type, property path) -> (the value that cannot be left again, why).
ONE_WAY: dict[tuple[str, str], tuple[object, str]] = {
    (VAULT, "properties.enablePurgeProtection"): (True, "Azure never turns a vault's purge protection off again"),
}


def _at(inputs: Mapping[str, Any], path: str) -> object:
    node: object = inputs
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _shown(value: object) -> str:
    """The engine sends every number as a float: 7.0 reads as 7."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def changed(deployed: Iterable[Registration], planned: Iterable[Registration],
            paths: Iterable[tuple[str, str]]) -> Iterator[tuple[Registration, str, object, object]]:
    """Each (planned resource, property path, old value, new value) where a resource present in both
    runs (a resource created by the change meets no refusal) changes one of `paths` of its type."""
    before = {reg.urn: unwrap(reg.inputs) for reg in deployed}
    paths = list(paths)
    for reg in planned:
        if reg.urn not in before:
            continue
        after = unwrap(reg.inputs)
        for typ, path in paths:
            old, new = _at(before[reg.urn], path), _at(after, path)
            if reg.type == typ:
                yield reg, path, old, new


def violations(deployed: Iterable[Registration], planned: Iterable[Registration],
               changes: Mapping[str, str]) -> list[str]:
    """What `changes` (the `--config` values) would change that the cloud refuses to."""
    deployed, planned = list(deployed), list(planned)
    keys = ", ".join(f"{key}={value}" for key, value in sorted(changes.items()))
    found = []
    for reg, path, old, new in changed(deployed, planned, IMMUTABLE):
        if old != new:
            found.append(f"{reg.type} {reg.name}: {keys} changes {path} from {_shown(old)} to {_shown(new)}, and "
                         f"{IMMUTABLE[reg.type, path]}: keep the value the stack was created with")
    for reg, path, old, new in changed(deployed, planned, ONE_WAY):
        kept, why = ONE_WAY[reg.type, path]
        if old == kept and new != kept:
            found.append(f"{reg.type} {reg.name}: {keys} changes {path} from {_shown(old)} to {_shown(new)}, and "
                         f"{why}: keep it on")
    return found

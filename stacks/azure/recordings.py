"""RecordingStore (Azure): a storage account and private container for session recordings.

The account takes no anonymous reads (`allowBlobPublicAccess` false) and no shared key: every
request is signed by Microsoft Entra, and the dispatcher hands out user delegation SAS URLs that
its managed identity signs (Get User Delegation Key needs
`Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action`, which Storage
Blob Delegator grants on the account). TLS 1.2 at least. Legal holds need version-level
immutability, which versioning underlies. Retention is one lifecycle management rule per day count
on `<container>/<prefix>/retain-<N>d/` (lifecycle prefixes start with the container's name), with
holds one more removing the previous versions under the prefix a day on, and a
block left uncommitted is discarded by Azure itself after seven days (Put Block: "uncommitted blocks
are garbage collected after seven days"), so no rule is needed for abandoned uploads.

The dispatcher's identity gets Storage Blob Data Contributor on the container alone and Storage
Blob Delegator on the account (built-in role ids from Microsoft's "Azure built-in roles for
Storage"); the bots' identity nothing. `destroy` leaves the account unless told, and never one
made with holds.
"""

from __future__ import annotations

from typing import Any, cast

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.storage as azure_storage

from dispatcher.artifacts.rules import retention_folder
from stacks.azure import naming
from stacks.azure.identity import built_in_role
from stacks.config.recording import RecordingSettings
from stacks.shared.recording_last_up import RecordingHolds

CONTAINER = "recordings"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_BLOB_DELEGATOR = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"
PREVIOUS_VERSION_DAYS = 1


def account_name(subscription_id: str, prefix: str) -> str:
    """3-24 lowercase letters and digits, unique across Azure: `vfrec`, the stack, the tail."""
    stack = "".join(c for c in prefix.lower().removeprefix("voicefleet-") if c.isalnum())
    return f"vfrec{stack[:13]}{naming.tail(subscription_id, prefix)}"


def lifecycle_rules(settings: RecordingSettings) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for days in settings.day_counts():
        if not days:
            continue
        rules.append({"name": f"expire-{retention_folder(days)}", "type": "Lifecycle", "enabled": True,
                      "definition": {"filters": {"blob_types": ["blockBlob"],
                                                 "prefix_match": [f"{CONTAINER}/{settings.prefix}/"
                                                                  f"{retention_folder(days)}/"]},
                                     "actions": {"base_blob": {"delete": {
                                         "days_after_modification_greater_than": days}}}}})
    if settings.hold:
        # Versioning keeps what an erasure, an expiry or a header rewrite replaces as a previous version.
        # Under the whole prefix (retain-forever, the default, and the erasure records included) those go
        # a day on, held ones excepted (immutability refuses the lifecycle too): else an erased recording
        # would stay in the account for ever.
        rules.append({"name": "expire-previous-versions", "type": "Lifecycle", "enabled": True,
                      "definition": {"filters": {"blob_types": ["blockBlob"],
                                                 "prefix_match": [f"{CONTAINER}/{settings.prefix}/"]},
                                     "actions": {"version": {"delete": {
                                         "days_after_creation_greater_than": PREVIOUS_VERSION_DAYS}}}}})
    return rules


class RecordingStore(pulumi.ComponentResource):
    account_name: pulumi.Output[str]
    destination: pulumi.Output[str]  # https://<account>.blob.core.windows.net/<container>/<prefix>
    grants: list[pulumi.Resource]

    def __init__(self, name: str, settings: RecordingSettings, *, subscription_id: str, prefix: str,
                 resource_group: pulumi.Input[str], location: str, dispatcher_principal_id: pulumi.Input[str],
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:RecordingStore", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=not settings.delete_on_destroy)
        child = pulumi.ResourceOptions(parent=self)
        account = azure_storage.StorageAccount(
            name, account_name=account_name(subscription_id, prefix), resource_group_name=resource_group,
            location=location, kind="StorageV2", sku={"name": "Standard_LRS"}, tags=tags,
            allow_blob_public_access=False, allow_shared_key_access=False, minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True, default_to_o_auth_authentication=True,
            # Version-level immutability (legal holds on versions) is set only as the account is made, and never
            # turned off: `recordingHold` changed on an existing account is refused (stacks/shared/recording_last_up.py,
            # and the plan's stacks/tools/preflight/immutable.py).
            immutable_storage_with_versioning={"enabled": True} if settings.hold else None,
            opts=kept)
        if settings.hold:
            versioning = azure_storage.BlobServiceProperties(
                name, account_name=account.name, resource_group_name=resource_group, blob_services_name="default",
                is_versioning_enabled=True, opts=kept)
            # The dispatcher waits for the grants and learns at start-up whether the account keeps versions
            # (dispatcher/artifacts/azure_store.py): the grants wait for the versioning.
            child = pulumi.ResourceOptions(parent=self, depends_on=[versioning])
        container = azure_storage.BlobContainer(name, account_name=account.name, resource_group_name=resource_group,
                                                container_name=CONTAINER, public_access=azure_storage.PublicAccess.NONE,
                                                opts=kept)
        rules = lifecycle_rules(settings)
        if rules:  # Azure refuses a management policy without a rule
            azure_storage.ManagementPolicy(
                name, account_name=account.name, resource_group_name=resource_group,
                management_policy_name="default",  # the only name the API takes
                policy={"rules": cast(list[azure_storage.ManagementPolicyRuleArgsDict], rules)}, opts=kept)
        container_scope = pulumi.Output.concat(account.id, "/blobServices/default/containers/", container.name)
        self.grants = [
            self._assign(name, "recorder", subscription_id, prefix, STORAGE_BLOB_DATA_CONTRIBUTOR, container_scope,
                         dispatcher_principal_id, child),
            self._assign(name, "delegator", subscription_id, prefix, STORAGE_BLOB_DELEGATOR, account.id,
                         dispatcher_principal_id, child)]
        # What the account holds, as applied (never turned off once on): its version-level immutability.
        hold = account.immutable_storage_with_versioning.apply(
            lambda found: found is not None and found.enabled is True)
        self.holds = RecordingHolds(hold=hold, held=hold)
        self.account_name = account.name
        self.destination = pulumi.Output.concat("https://", account.name, ".blob.core.windows.net/", container.name,
                                                "/", settings.prefix)
        self.register_outputs({"account_name": self.account_name, "destination": self.destination})

    @staticmethod
    def _assign(name: str, purpose: str, subscription_id: str, prefix: str, role: str, scope: pulumi.Input[str],
                principal_id: pulumi.Input[str], opts: pulumi.ResourceOptions) -> azure_authorization.RoleAssignment:
        return azure_authorization.RoleAssignment(
            f"{name}-{purpose}",
            role_assignment_name=naming.guid(subscription_id, f"{prefix}/assignment/recordings-{purpose}"),
            principal_id=principal_id, principal_type="ServicePrincipal",
            role_definition_id=built_in_role(subscription_id, role), scope=scope, opts=opts)

"""SecretStore (Azure): one Key Vault in RBAC mode, filled from secret stack config, read by reference.

The vault grants nothing through access policies (`enable_rbac_authorization`): the dispatcher's
identity gets Key Vault Secrets User on exactly the secrets its app references (`grant_access`, per
secret, not the vault), and Container Apps reads each through that identity (`secrets[].keyVaultUrl`
with `identity`), **pinned to the version this stack wrote**: a rotation (`pulumi config set --secret`
then `up`) is an ordinary diff that rolls a new revision. The secrets are written through ARM, but
pulumi-azure-native deletes one through the vault's data plane (ARM has no DELETE for a secret), so
the deploying identity gets Key Vault Secrets Officer on the vault: a removed secret or a `destroy`
is otherwise refused (403) in RBAC mode.

Network: the vault answers its private endpoint in the stack's `store` subnet (stacks/azure/
private_link.py, zone `privatelink.vaultcore.azure.net`), which is how the dispatcher's Key Vault
references, its own reads of the bots' secrets and the relay's boot script reach it. Public network
access is `Disabled` (the SDK: "all traffic except private endpoint traffic and that that originates
from trusted services will be blocked", pulumi_azure_native/keyvault/_inputs.py VaultPropertiesArgs)
unless `azureKeyVaultAllowedIps` lists addresses: then it is on with default action `Deny` and only
those addresses pass. ARM's secret writes (`pulumi up`) are control-plane calls the vault's network
rules do not apply to; the data-plane delete of a removed secret or a `destroy` comes from the
deployer's address, which must be listed then (docs/pulumi.md, Azure).

A secret the stack unsets again is kept with a placeholder (`kept`); the vault's soft-delete retention
and purge protection come from keys of their own, never `protect` (below; docs/pulumi.md, Azure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.keyvault as azure_keyvault

from stacks.azure import naming
from stacks.azure.identity import KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER, built_in_role
from stacks.azure.private_link import PrivateLinkArgs, private_link
from stacks.shared.contract import removable_secret

PRIVATE_ZONE = "privatelink.vaultcore.azure.net"
UNSET_VALUE = "unset: this stack's configuration holds no value for it"
UNSET_TAG = "voicefleet-unset"
GROUP_ID = "vault"
RETENTION = "properties.softDeleteRetentionInDays"  # fixed at creation (stacks/tools/preflight/immutable.py)


def network_access(allowed_ips: tuple[str, ...]) -> dict[str, object]:
    """Private endpoint only; with `allowed_ips`, those addresses too. `bypass: AzureServices` lets
    Azure's trusted services through (still subject to RBAC: nothing here grants them a role)."""
    rules = {"bypass": "AzureServices", "default_action": "Deny",
             "ip_rules": [{"value": ip} for ip in allowed_ips], "virtual_network_rules": []}
    return {"public_network_access": "Enabled" if allowed_ips else "Disabled", "network_acls": rules}


@dataclass(frozen=True)
class SecretStoreArgs:
    vault_name: str
    subscription_id: str
    resource_group: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    deployer_object_id: pulumi.Input[str]  # whoever runs `pulumi up`/`destroy` (getClientConfig)
    values: Mapping[str, pulumi.Input[str]]  # environment variable name -> secret value
    kept: tuple[str, ...]  # names whose secret stays while unset, holding UNSET_VALUE (never deleted)
    protect: bool
    retention_days: int  # soft delete: fixed when the vault is created
    purge_protection: bool  # once on, never off
    tags: dict[str, str]
    vnet_id: pulumi.Input[str]
    endpoint_subnet_id: pulumi.Input[str]  # the private endpoint's subnet
    allowed_ips: tuple[str, ...] = ()  # addresses (CIDR) outside the network that may reach the data plane


class SecretStore(pulumi.ComponentResource):
    ids: dict[str, pulumi.Output[str]]  # environment variable name -> secret resource id
    uris: dict[str, pulumi.Output[str]]  # environment variable name -> the versioned secret URI

    def __init__(self, name: str, args: SecretStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:SecretStore", name, None, opts)
        self._name, self._args = name, args
        self.vault = azure_keyvault.Vault(
            name,
            vault_name=args.vault_name,
            resource_group_name=args.resource_group,
            location=args.location,
            properties=cast(azure_keyvault.VaultPropertiesArgsDict, {
                "tenant_id": args.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enable_rbac_authorization": True,
                "enable_soft_delete": True,
                # Fixed at creation: ARM refuses a change ("has been set already and it can't be modified",
                # stacks/tools/preflight/immutable.py), so it never follows `protect`, which a destroy flips.
                "soft_delete_retention_in_days": args.retention_days,
                # Irreversible (the SDK: "does not accept false as its value"): sent only when on.
                **({"enable_purge_protection": True} if args.purge_protection else {}),
                "enabled_for_deployment": False,
                "enabled_for_disk_encryption": False,
                "enabled_for_template_deployment": False,
                **network_access(args.allowed_ips),
            }),
            tags=args.tags,
            # The PUT of any later update carries the retention the vault was created with, never the key's
            # value now: a vault created by a release where it followed `protect` (7 days unprotected, 90
            # protected) upgrades whatever azureKeyVaultRetentionDays now says, instead of failing at ARM.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, ignore_changes=[RETENTION]),
        )
        # What reads the vault from the network waits for its endpoint and the name's private record.
        self.ready = private_link(name, PrivateLinkArgs(
            resource_group=args.resource_group, location=args.location, vnet_id=args.vnet_id,
            subnet_id=args.endpoint_subnet_id, target_id=self.vault.id, group_id=GROUP_ID, zone=PRIVATE_ZONE,
            connection="vault", record="vault", tags=args.tags), parent=self)
        # Deleting a secret is a data-plane call made as the deployer; deleted after every secret.
        officer = azure_authorization.RoleAssignment(
            f"{name}-deployer",
            role_assignment_name=naming.guid(args.subscription_id, f"{args.vault_name}/deployer"),
            principal_id=args.deployer_object_id,
            role_definition_id=built_in_role(args.subscription_id, KEY_VAULT_SECRETS_OFFICER),
            scope=self.vault.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ids, self.uris = {}, {}
        self.secrets: dict[str, azure_keyvault.Secret] = {}
        # Never deleted when unset: pulumi-azure-native's delete is a data-plane `DeleteSecret` without a
        # purge (provider/pkg/resources/customresources/custom_keyvault.go), so the name would stay
        # soft-deleted for the retention and setting the key again then is refused 409
        # `ObjectIsDeletedButRecoverable` (with purge protection, only a manual recover helps). Unset, it
        # holds UNSET_VALUE instead: a new version, written through ARM, that nothing references or reads.
        unset = {env_name: UNSET_VALUE for env_name in args.kept if env_name not in args.values}
        for env_name, value in sorted({**unset, **args.values}.items()):
            secret = azure_keyvault.Secret(
                f"{name}-{naming.slug(env_name)}",
                secret_name=naming.slug(env_name),
                vault_name=self.vault.name,
                resource_group_name=args.resource_group,
                properties={"value": pulumi.Output.secret(value)},
                tags={**args.tags, UNSET_TAG: "true"} if env_name in unset else args.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[officer],
                                            protect=args.protect and not removable_secret(env_name)),
            )
            self.secrets[env_name] = secret
            self.ids[env_name] = secret.id
            self.uris[env_name] = secret.properties.secret_uri_with_version
        self.register_outputs({"ids": self.ids})

    def grant_access(self, grantee: str, principal_id: pulumi.Input[str],
                     env_names: Sequence[str]) -> list[azure_authorization.RoleAssignment]:
        """Key Vault Secrets User on each named secret, for one identity."""
        args = self._args
        return [
            azure_authorization.RoleAssignment(
                f"{self._name}-{naming.slug(env)}-{grantee}",
                role_assignment_name=naming.guid(args.subscription_id, f"{args.vault_name}/{env}/{grantee}"),
                principal_id=principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=built_in_role(args.subscription_id, KEY_VAULT_SECRETS_USER),
                scope=self.ids[env],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for env in sorted(env_names)
        ]

    def app_secrets(self, env_names: Sequence[str], identity_id: pulumi.Input[str]) -> list[dict[str, object]]:
        """Container Apps `configuration.secrets`: each a Key Vault reference read with `identity_id`."""
        return [{"name": naming.slug(env), "key_vault_url": self.uris[env], "identity": identity_id}
                for env in sorted(env_names)]

    def references(self, env_names: Sequence[str]) -> pulumi.Output[str]:
        """`ENV=<versioned secret URI>,…`: references, never values (for the bots' secrets)."""
        pairs = [pulumi.Output.concat(env, "=", self.uris[env]) for env in sorted(env_names)]
        return pulumi.Output.all(*pairs).apply(lambda items: ",".join(items))

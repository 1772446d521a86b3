"""SecretStore (Azure): one Key Vault in RBAC mode, filled from secret stack config, read by reference.

The vault grants nothing through access policies (`enable_rbac_authorization`): the dispatcher's
identity gets Key Vault Secrets User on exactly the secrets its app references (`grant_access`, per
secret, not the vault), and Container Apps reads each through that identity (`secrets[].keyVaultUrl`
with `identity`), **pinned to the version this stack wrote**: a rotation (`pulumi config set --secret`
then `up`) is an ordinary diff that rolls a new revision. The secrets are written through ARM, but
pulumi-azure-native deletes one through the vault's data plane (ARM has no DELETE for a secret), so
the deploying identity gets Key Vault Secrets Officer on the vault: a removed secret or a `destroy`
is otherwise refused (403) in RBAC mode.

Soft delete is always on (Azure no longer lets it be turned off); retention 7 days on dev, 90 with
purge protection on prod stacks (`protect`). A destroyed vault keeps its name for that time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_azure_native as azure

from stacks.azure import naming
from stacks.azure.identity import KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER, built_in_role
from stacks.contract import REMOVABLE_SECRETS


@dataclass(frozen=True)
class SecretStoreArgs:
    vault_name: str
    subscription_id: str
    resource_group: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    deployer_object_id: pulumi.Input[str]  # whoever runs `pulumi up`/`destroy` (getClientConfig)
    values: Mapping[str, pulumi.Input[str]]  # environment variable name -> secret value
    protect: bool
    tags: dict[str, str]


class SecretStore(pulumi.ComponentResource):
    ids: dict[str, pulumi.Output[str]]  # environment variable name -> secret resource id
    uris: dict[str, pulumi.Output[str]]  # environment variable name -> the versioned secret URI

    def __init__(self, name: str, args: SecretStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:SecretStore", name, None, opts)
        self._name, self._args = name, args
        self.vault = azure.keyvault.Vault(
            name,
            vault_name=args.vault_name,
            resource_group_name=args.resource_group,
            location=args.location,
            properties=cast(azure.keyvault.VaultPropertiesArgsDict, {
                "tenant_id": args.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enable_rbac_authorization": True,
                "enable_soft_delete": True,
                "soft_delete_retention_in_days": 90 if args.protect else 7,
                # Purge protection cannot be turned off again once on: prod stacks only.
                **({"enable_purge_protection": True} if args.protect else {}),
                "enabled_for_deployment": False,
                "enabled_for_disk_encryption": False,
                "enabled_for_template_deployment": False,
            }),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        # Deleting a secret is a data-plane call made as the deployer; deleted after every secret.
        officer = azure.authorization.RoleAssignment(
            f"{name}-deployer",
            role_assignment_name=naming.guid(args.subscription_id, f"{args.vault_name}/deployer"),
            principal_id=args.deployer_object_id,
            role_definition_id=built_in_role(args.subscription_id, KEY_VAULT_SECRETS_OFFICER),
            scope=self.vault.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ids, self.uris = {}, {}
        self.secrets: dict[str, azure.keyvault.Secret] = {}
        for env_name, value in sorted(args.values.items()):
            secret = azure.keyvault.Secret(
                f"{name}-{naming.slug(env_name)}",
                secret_name=naming.slug(env_name),
                vault_name=self.vault.name,
                resource_group_name=args.resource_group,
                properties={"value": pulumi.Output.secret(value)},
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[officer],
                                            protect=args.protect and env_name not in REMOVABLE_SECRETS),
            )
            self.secrets[env_name] = secret
            self.ids[env_name] = secret.id
            self.uris[env_name] = secret.properties.secret_uri_with_version
        self.register_outputs({"ids": self.ids})

    def grant_access(self, grantee: str, principal_id: pulumi.Input[str],
                     env_names: Sequence[str]) -> list[azure.authorization.RoleAssignment]:
        """Key Vault Secrets User on each named secret, for one identity."""
        args = self._args
        return [
            azure.authorization.RoleAssignment(
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

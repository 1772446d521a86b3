"""SecretStore (GCP): Secret Manager secrets filled from secret stack config, read by reference.

Cloud Run reads them through `value_source.secret_key_ref` and bot VMs by the version's resource
name, both **pinned to the SecretVersion this stack wrote** (not "latest"): rotating a key with
`pulumi config set --secret` + `pulumi up` is an ordinary diff that rolls out a new Cloud Run
revision and a new instance template (review item 5). `grant_access` gives one service account
access to named secrets only (per-secret IAM, not a project-wide accessor role) and returns the
grants, so a consumer can depend on them (Cloud Run fails a revision whose identity cannot yet
read its secrets; review item 7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.secretmanager as gcp_secretmanager

from stacks.shared.contract import removable_secret


@dataclass(frozen=True)
class SecretStoreArgs:
    prefix: str
    values: Mapping[str, pulumi.Output[str]]  # environment variable name -> secret value
    protect: bool
    depends_on: Sequence[pulumi.Resource] = ()


def _slug(env_name: str) -> str:
    return env_name.lower().replace("_", "-")


class SecretStore(pulumi.ComponentResource):
    ids: dict[str, pulumi.Output[str]]  # environment variable name -> secret id

    def __init__(self, name: str, args: SecretStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:SecretStore", name, None, opts)
        self._name = name
        self._secrets: dict[str, gcp_secretmanager.Secret] = {}
        self.versions: dict[str, gcp_secretmanager.SecretVersion] = {}
        self.ids = {}
        for env_name, value in sorted(args.values.items()):
            secret = gcp_secretmanager.Secret(
                f"{name}-{_slug(env_name)}",
                secret_id=f"{args.prefix}-{_slug(env_name)}",
                replication={"auto": {}},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect and not removable_secret(env_name),
                                            depends_on=list(args.depends_on)),
            )
            self.versions[env_name] = gcp_secretmanager.SecretVersion(
                f"{name}-{_slug(env_name)}", secret=secret.id, secret_data=value,
                opts=pulumi.ResourceOptions(parent=self))
            self._secrets[env_name] = secret
            self.ids[env_name] = secret.secret_id
        self.register_outputs({"ids": self.ids})

    def env(self, env_names: Sequence[str]) -> list[dict[str, object]]:
        """Cloud Run `envs` entries that reference the secrets at this stack's version."""
        return [{"name": env, "value_source": {"secret_key_ref": {"secret": self.ids[env],
                                                                  "version": self.versions[env].version}}}
                for env in sorted(env_names)]

    def version_names(self, env_names: Sequence[str]) -> pulumi.Output[str]:
        """`ENV=projects/P/secrets/S/versions/N,…` for a VM's metadata: references, never values."""
        pairs = [pulumi.Output.concat(env, "=", self.versions[env].name) for env in sorted(env_names)]
        return pulumi.Output.all(*pairs).apply(lambda items: ",".join(items))

    def grant_access(self, grantee: str, member: pulumi.Input[str],
                     env_names: Sequence[str]) -> list[gcp_secretmanager.SecretIamMember]:
        return [
            gcp_secretmanager.SecretIamMember(
                f"{self._name}-{_slug(env)}-{grantee}",
                secret_id=self._secrets[env].id,
                role="roles/secretmanager.secretAccessor",
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for env in sorted(env_names)
        ]

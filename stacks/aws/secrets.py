"""SecretStore: Secrets Manager secrets filled from secret stack config, read only by reference.

Containers get `secrets: [{name, valueFrom: <ARN>:::<version id>}]`: the version this stack wrote,
not the secret's current one. ECS reads secrets only when a container starts, so with a bare ARN a
rotation reached new tasks at random and the dispatcher never; pinned, `pulumi config set --secret`
+ `pulumi up` is an ordinary diff (new task definition revisions, a dispatcher rollout; review item
5). The value never appears in a task definition, an environment variable of the plan, or a diff.
`grant_read` gives one role access to named secrets only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws.iam as aws_iam
import pulumi_aws.secretsmanager as aws_secretsmanager

from stacks.aws.iam import policy_document, statement
from stacks.shared.contract import removable_secret


@dataclass(frozen=True)
class SecretStoreArgs:
    path: str  # e.g. /voicefleet/aws-prod; secrets are <path>/<env-name-lowercase>-<generated>
    values: Mapping[str, pulumi.Output[str]]  # environment variable name -> secret value
    recovery_window_days: int  # 0 in dev (a destroyed stack can be recreated at once)
    protect: bool


def _slug(env_name: str) -> str:
    return env_name.lower().replace("_", "-")


class SecretStore(pulumi.ComponentResource):
    arns: dict[str, pulumi.Output[str]]  # environment variable name -> secret ARN

    def __init__(self, name: str, args: SecretStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:SecretStore", name, None, opts)
        self._name = name
        self.arns = {}
        self._version_ids: dict[str, pulumi.Output[str]] = {}
        for env_name, value in sorted(args.values.items()):
            secret = aws_secretsmanager.Secret(
                f"{name}-{_slug(env_name)}",
                # A generated tail, not a fixed name: CreateSecret refuses a name still in its
                # recovery window, so a fixed name could not be re-created for up to 30 days after
                # a destroy; the tail (26 characters) also keeps names from ending in "-" plus six
                # characters, which AWS reserves for its own ARN suffix.
                name_prefix=f"{args.path}/{_slug(env_name)}-",
                recovery_window_in_days=args.recovery_window_days,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect and not removable_secret(env_name)),
            )
            version = aws_secretsmanager.SecretVersion(f"{name}-{_slug(env_name)}", secret_id=secret.id,
                                                       secret_string=value, opts=pulumi.ResourceOptions(parent=self))
            self.arns[env_name] = secret.arn
            self._version_ids[env_name] = version.version_id
        self.register_outputs({"arns": self.arns})

    def version(self, env_name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """(secret ARN, version id) of the version this stack wrote."""
        return self.arns[env_name], self._version_ids[env_name]

    def references(self, env_names: Sequence[str]) -> list[dict[str, pulumi.Input[str]]]:
        """Container-definition `secrets` entries, sorted for a stable diff: ARN, no JSON key, no
        stage, this version (`arn:…:secret:name-AbCdEf:json-key:version-stage:version-id`)."""
        return [{"name": env, "valueFrom": pulumi.Output.concat(self.arns[env], ":::", self._version_ids[env])}
                for env in sorted(env_names)]

    def grant_read(self, grantee: str, role: aws_iam.Role, env_names: Sequence[str]) -> aws_iam.RolePolicy | None:
        """Let `role` (an ECS execution role, the relay's instance role) read exactly these secrets."""
        if not env_names:
            return None
        return aws_iam.RolePolicy(
            f"{self._name}-read-{grantee}",
            role=role.id,
            policy=policy_document(statement(["secretsmanager:GetSecretValue"],
                                             [self.arns[env] for env in sorted(env_names)])),
            opts=pulumi.ResourceOptions(parent=self),
        )

"""Every secret a service references is readable by the identity that starts it.

Cloud Run ("Configure secrets for services", cloud.google.com/run/docs/configuring/secrets):
"During service deployment, all secrets used … are checked to ensure the service account used to
run the container has access to them. If any check fails, the service deployment fails." The rule:
each `secretKeyRef.secret` of a Cloud Run service has a `secretAccessor` SecretIamMember for the
service's `serviceAccount`.

ECS ("Pass Secrets Manager secrets through Amazon ECS environment variables",
docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html): the task
execution role needs `secretsmanager:GetSecretValue` on each referenced secret, else the task fails
to start (ResourceInitializationError). The rule: each `secrets[].valueFrom` of a task definition
(the secret's ARN before any `:json-key:version-stage:version-id` suffix) is a Resource of a
GetSecretValue statement in a policy attached to its `executionRoleArn`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stacks.tools.mocks import Registration, unwrap

_ACCESSOR = "roles/secretmanager.secretAccessor"


def violations(registrations: Iterable[Registration]) -> list[str]:
    regs = list(registrations)
    return _cloud_run(regs) + _ecs(regs)


def _cloud_run(regs: list[Registration]) -> list[str]:
    granted = {(str(unwrap(r.inputs).get("secretId", "")).rsplit("/", 1)[-1], unwrap(r.inputs).get("member"))
               for r in regs if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"
               and unwrap(r.inputs).get("role") == _ACCESSOR}
    found = []
    for reg in (r for r in regs if r.type == "gcp:cloudrunv2/service:Service"):
        template = unwrap(reg.inputs).get("template") or {}
        member = f"serviceAccount:{template.get('serviceAccount')}"
        for container in template.get("containers") or []:
            for env in container.get("envs") or []:
                secret = ((env.get("valueSource") or {}).get("secretKeyRef") or {}).get("secret")
                if secret and (str(secret).rsplit("/", 1)[-1], member) not in granted:
                    found.append(f"{reg.type} {reg.name}: {env.get('name')} references secret {secret!r}, which "
                                 f"its account {member} may not read: Cloud Run fails the deployment")
    return found


def _secret_arn(value_from: str) -> str:
    # arn:aws:secretsmanager:region:account:secret:name[:json-key:version-stage:version-id]
    return ":".join(value_from.split(":")[:7])


def _readable(regs: list[Registration], role_arn: str) -> set[str]:
    roles = {r.urn for r in regs if r.type == "aws:iam/role:Role" and r.outputs.get("arn") == role_arn}
    arns: set[str] = set()
    for reg in regs:
        if reg.type != "aws:iam/rolePolicy:RolePolicy" or not roles.intersection(reg.dependencies):
            continue
        policy: Any = json.loads(unwrap(reg.inputs).get("policy") or "{}")
        for statement in policy.get("Statement", []):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement.get("Effect") == "Allow" and "secretsmanager:GetSecretValue" in actions:
                resources = statement.get("Resource", [])
                arns.update([resources] if isinstance(resources, str) else resources)
    return arns


def _ecs(regs: list[Registration]) -> list[str]:
    found = []
    for reg in (r for r in regs if r.type == "aws:ecs/taskDefinition:TaskDefinition"):
        inputs = unwrap(reg.inputs)
        referenced = [(s["name"], _secret_arn(s["valueFrom"])) for c in json.loads(inputs["containerDefinitions"])
                      for s in c.get("secrets") or []]
        if not referenced:
            continue
        readable = _readable(regs, inputs.get("executionRoleArn", ""))
        found += [f"{reg.type} {reg.name}: {name} references {arn}, which its execution role may not read: "
                  f"the task fails to start" for name, arn in referenced if arn not in readable]
    return found

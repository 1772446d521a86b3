"""What must exist before a resource starts using it: grants a machine or service needs at boot.

The engine creates a resource once its inputs and `depends_on` are ready, in parallel otherwise; IAM
changes then take time to propagate (AWS and GCP both document eventual consistency). Two places
read with an identity the moment they exist and never retry:
- the AWS relay's user data (cloud-init, once per instance) reads its secrets with the instance role:
  the instance must come after every RolePolicy that grants those secrets;
- the GCP dispatcher (Cloud Run) starts reserve VMs at once: it must come after every grant to its
  own account or to the bot account (launcher role, actAs, image pull, logs, secrets, self-delete).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

GCP_GRANTS = ("gcp:projects/iAMMember:IAMMember", "gcp:serviceaccount/iAMMember:IAMMember",
              "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
              "gcp:secretmanager/secretIamMember:SecretIamMember")


def _role_policies(instance: Registration, regs: list[Registration]) -> list[Registration]:
    """The RolePolicies of the instance's role, followed through the engine's dependencies
    (instance -> its instance profile -> the profile's role <- the role's policies)."""
    by_urn = {r.urn: r for r in regs}
    profiles = [by_urn[u] for u in instance.dependencies if u in by_urn
                and by_urn[u].type == "aws:iam/instanceProfile:InstanceProfile"]
    roles = {u for p in profiles for u in p.dependencies if u in by_urn and by_urn[u].type == "aws:iam/role:Role"}
    return [r for r in regs if r.type == "aws:iam/rolePolicy:RolePolicy" and roles & set(r.dependencies)]


def _relay_violations(regs: list[Registration]) -> list[str]:
    found = []
    for instance in (r for r in regs if r.type == "aws:ec2/instance:Instance"):
        user_data = str(unwrap(instance.inputs).get("userData") or "")
        for policy in _role_policies(instance, regs):
            statements = json.loads(unwrap(policy.inputs)["policy"]).get("Statement", [])
            arns = [arn for s in statements if "secretsmanager:GetSecretValue" in s.get("Action", [])
                    for arn in s.get("Resource", [])]
            if any(arn in user_data for arn in arns) and policy.urn not in instance.dependencies:
                found.append(f"{instance.type} {instance.name}: its user data reads secrets that {policy.name} "
                             "grants, but it does not wait for that policy (user data runs once)")
    return found


def _accounts(service: Registration, regs: list[Registration]) -> set[str]:
    """serviceAccount: members of the service's own identity and of the VMs it launches."""
    inputs = unwrap(service.inputs)
    emails = {inputs.get("template", {}).get("serviceAccount")}
    containers = inputs.get("template", {}).get("containers", [])
    envs = {e["name"]: e.get("value") for c in containers for e in c.get("envs", [])}
    template = str(envs.get("GCE_INSTANCE_TEMPLATE") or "").rsplit("/", 1)[-1]
    for reg in regs:
        inputs = unwrap(reg.inputs)
        if reg.type == "gcp:compute/instanceTemplate:InstanceTemplate" and template.startswith(inputs["namePrefix"]):
            emails.add((inputs.get("serviceAccount") or {}).get("email"))
    return {f"serviceAccount:{email}" for email in emails if email}


def _dispatcher_violations(regs: list[Registration]) -> list[str]:
    found = []
    for service in (r for r in regs if r.type == "gcp:cloudrunv2/service:Service"):
        members = _accounts(service, regs)
        for grant in (r for r in regs if r.type in GCP_GRANTS):
            if unwrap(grant.inputs).get("member") in members and grant.urn not in service.dependencies:
                found.append(f"{service.type} {service.name}: starts launching bot VMs without waiting for "
                             f"{grant.type.rsplit(':', 1)[-1]} {grant.name}")
    return found


def violations(registrations: Iterable[Registration]) -> list[str]:
    regs = list(registrations)
    return _relay_violations(regs) + _dispatcher_violations(regs)

"""The SIP edge's namespace admits the edge's own pod only (docs/sip.md#on-kubernetes).

Pod Security enforces `privileged` there (hostNetwork needs it), so whoever may create pods or Deployments in
it cluster-wide (an `edit` binding for CI or GitOps) could run a privileged or hostPath pod on the edge's
node. A ValidatingAdmissionPolicy bound to that namespace holds every pod created or changed in it to the
edge's: its image (by digest), its commands, uid 10001 (the front's container 10002) and non-root, every
capability dropped, nothing privileged, no hostPath, hostPID or hostIPC.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_kubernetes.admissionregistration as k8s_admissionregistration

from stacks.k8s.namespaces import NAME_LABEL

MESSAGE = ("the SIP edge's namespace admits the edge's own pod only: its image and commands, uid {uid}, "
           "no privilege, no hostPath, hostPID or hostIPC (docs/sip.md#on-kubernetes)")


def _containers(field: str) -> str:
    return f"(has(object.spec.{field}) ? object.spec.{field} : [])"


def policy_spec(namespace: str, image: str, commands: Sequence[Sequence[str]], uid: int,
                container_uids: Sequence[int] = ()) -> dict[str, Any]:
    """Every value written into CEL is JSON (a CEL string and list literal): the image comes from the stack. The pod
    runs as `uid`; a container may run as one of `container_uids` (the front's own user) or, by default, `uid`."""
    each = f"({_containers('containers')} + {_containers('initContainers')})"  # `.all` binds tighter than `+`
    known = json.dumps([list(command) for command in commands])
    users = json.dumps(list(container_uids or [uid]))
    container = (
        f"c.image == {json.dumps(image)} && has(c.command) && c.command in {known} && "
        "has(c.securityContext) && has(c.securityContext.allowPrivilegeEscalation) && "
        "!c.securityContext.allowPrivilegeEscalation && "
        "!(has(c.securityContext.privileged) && c.securityContext.privileged) && "
        "has(c.securityContext.capabilities) && has(c.securityContext.capabilities.drop) && "
        "c.securityContext.capabilities.drop == ['ALL'] && !has(c.securityContext.capabilities.add) && "
        f"(!has(c.securityContext.runAsUser) || c.securityContext.runAsUser in {users})")
    expression = (
        f"{each}.all(c, {container}) && "
        f"!has(object.spec.ephemeralContainers) && "
        "!(has(object.spec.hostPID) && object.spec.hostPID) && !(has(object.spec.hostIPC) && object.spec.hostIPC) && "
        "(!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath))) && "
        "has(object.spec.securityContext) && has(object.spec.securityContext.runAsUser) && "
        f"object.spec.securityContext.runAsUser == {uid} && has(object.spec.securityContext.runAsNonRoot) && "
        "object.spec.securityContext.runAsNonRoot")
    return {
        "failure_policy": "Fail",
        "match_constraints": {
            "namespace_selector": {"match_labels": {NAME_LABEL: namespace}},
            "resource_rules": [{"api_groups": [""], "api_versions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                "resources": ["pods", "pods/ephemeralcontainers"]}],
        },
        "validations": [{"expression": expression, "message": MESSAGE.format(uid=uid), "reason": "Forbidden"}],
    }


class SipEdgeAdmission(pulumi.ComponentResource):
    def __init__(self, name: str, policy_name: str, spec: pulumi.Input[dict[str, Any]], labels: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:SipEdgeAdmission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = k8s_admissionregistration.v1.ValidatingAdmissionPolicy(
            name, metadata={"name": policy_name, "labels": labels},
            spec=cast(pulumi.Input[k8s_admissionregistration.v1.ValidatingAdmissionPolicySpecArgsDict], spec),
            opts=child)
        k8s_admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            name, metadata={"name": policy_name, "labels": labels},
            spec={"policy_name": policy.metadata.name, "validation_actions": ["Deny"]}, opts=child)
        self.register_outputs({})

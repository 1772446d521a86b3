"""The model service's namespace held to what the stack's Deployment makes, by a ValidatingAdmissionPolicy.

The model's pods hear every converged call's audio. The bots' policy (stacks/k8s/admission.py) matches the
bots' namespace alone, so the model's namespace has one of its own, in the same terms:

- only the ReplicaSet controller creates its pods (a person with `edit` there cannot start a pod of another
  image beside it), and a pod's update leaves its `spec`. It does not tell the stack's ReplicaSet from
  another: RBAC must grant nobody `edit`, or another write on workloads, in the namespace;
- each such pod is owned by a ReplicaSet (its controller) and runs the stack's model image (`k8sModelImage`,
  by digest) in every container with the image's own command and arguments, with no init or ephemeral
  container, no API token mounted and no volume but an `emptyDir` (its scratch space);
- nobody adds an ephemeral container to, execs into, attaches to, port-forwards or proxies to it.

Pod Security `restricted`, enforced on the namespace, holds the rest (no host access, no privilege).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes.admissionregistration as k8s_admissionregistration

from stacks.k8s.admission import ENTRIES, rule
from stacks.k8s.cel import empty, literal, quoted
from stacks.k8s.namespaces import NAME_LABEL

# The ReplicaSet controller's identity: its own ServiceAccount when kube-controller-manager runs with
# --use-service-account-credentials (kubeadm, GKE, EKS, AKS), else the manager's own user.
POD_MAKERS = ("system:serviceaccount:kube-system:replicaset-controller", "system:kube-controller-manager")
MESSAGE = ("only the model service's Deployment creates pods here, owned by a ReplicaSet, each running the stack's "
           "model image as it starts (no command or args) with no API token, no init container and no volume but "
           "emptyDir, and nobody changes their spec")


@dataclass(frozen=True)
class ModelAdmissionArgs:
    prefix: str  # the policy is cluster-scoped: the stack's prefix lets two stacks share a cluster
    namespace: str
    image: str  # by digest (stacks/config/k8s_model.py)
    labels: dict[str, str]


def policy_spec(args: ModelAdmissionArgs) -> dict[str, Any]:
    pod, owners = "object.spec", "object.metadata.ownerReferences"
    # The image's own entrypoint: another command or arguments would make the same image run something else.
    made = (f"has({owners}) && {owners}.exists(o, o.apiVersion == 'apps/v1' && o.kind == 'ReplicaSet' && "
            f"has(o.controller) && o.controller) && "
            f"{pod}.containers.all(c, c.image == {literal(args.image)} && {empty('c.command')} && "
            f"{empty('c.args')}) && {empty(pod + '.initContainers')} && "
            f"{empty(pod + '.ephemeralContainers')} && has({pod}.automountServiceAccountToken) && "
            f"!{pod}.automountServiceAccountToken && "
            f"(!has({pod}.volumes) || {pod}.volumes.all(v, has(v.emptyDir)))")
    return {
        "failure_policy": "Fail",
        "match_constraints": {
            "namespace_selector": {"match_labels": {NAME_LABEL: args.namespace}},
            "resource_rules": [rule([""], ["CREATE", "UPDATE"], ["pods"], "v1"),
                               rule([""], ["*"], [f"pods/{entry}" for entry in ENTRIES], "v1")],
        },
        "validations": [
            {"expression": f"!(request.subResource in {quoted(ENTRIES)})",
             "message": "nobody adds ephemeral containers to, execs into, attaches to, port-forwards or proxies to "
                        "the model service's pods: they hear every call's audio", "reason": "Forbidden"},
            {"expression": ("request.subResource != '' || (request.operation == 'CREATE' ? "
                            f"request.userInfo.username in {quoted(POD_MAKERS)} && {made} : "
                            "object.spec == oldObject.spec)"),
             "message": MESSAGE, "reason": "Forbidden",
             "message_expression": f"\"{MESSAGE}; this request came from \" + request.userInfo.username"},
        ],
    }


class ModelAdmission(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelAdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:ModelAdmission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy_name = f"{args.prefix}-model-made-by-its-deployment"
        policy = k8s_admissionregistration.v1.ValidatingAdmissionPolicy(
            name, metadata={"name": policy_name, "labels": args.labels},
            spec=cast(k8s_admissionregistration.v1.ValidatingAdmissionPolicySpecArgsDict, policy_spec(args)),
            opts=child)
        binding = k8s_admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            name, metadata={"name": policy_name, "labels": args.labels},
            spec={"policy_name": policy.metadata.name, "validation_actions": ["Deny"]}, opts=child)
        self.objects: tuple[pulumi.Resource, ...] = (policy, binding)
        self.register_outputs({})

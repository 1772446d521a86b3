"""What no read can prove, refused at admission: who may make, change or enter the bots' pods (agent-sandbox mode).

A pool bot is admitted on its pod's identity and its owners, read back (docs/kubernetes.md, "The warm
path"); who created or changed an object is not on it. So a ValidatingAdmissionPolicy
(admissionregistration.k8s.io/v1, GA since Kubernetes 1.30) and its Binding hold the bots' namespace to:

- only agent-sandbox's controller creates, changes or deletes Sandboxes (the garbage collector and the
  namespace's deletion may change and delete them);
- only the controller creates pods; a pod's update (by anyone) leaves its `spec`, and its owners unless
  the controller or the collector changes them;
- only the deployer (`k8sDeployer`, the kubeconfig's user) creates SandboxTemplates and SandboxWarmPools
  or changes their `spec` (the controller and the collector their metadata; deletes are RBAC's); their
  `scale` subresource matches no rule, so the dispatcher's `PATCH …/scale`, `kubectl scale` and an HPA
  keep working;
- only the dispatcher creates SandboxClaims, and only it, the controller or the collector changes
  their `spec` (their `status` is a subresource);
- only the kubelets (`system:nodes`) mint tokens for the bots' ServiceAccount;
- nobody adds an ephemeral container to, execs into, attaches to, port-forwards to or proxies to a pod;
- a pod's update by anyone but the controller leaves its `voicefleet.io/` labels and annotations as they
  are (the session's annotation says whose pod it is; a rewrite would at least deny it its bot).

In CEL, `object` is null on a DELETE and `oldObject` on a CREATE. Every name written into an expression
is checked first (DNS labels; the deployer's user name has no quote or backslash: stacks/config/k8s.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from dispatcher.machines.k8s.claims import GROUP_VERSION
from dispatcher.machines.k8s.pool_bots import SANDBOX_GROUP
from stacks.k8s.namespaces import NAME_LABEL

POOL_GROUP = GROUP_VERSION.split("/", 1)[0]
# Who deletes or un-owns what a deleted owner leaves, and empties a deleted namespace.
COLLECTORS = ("system:serviceaccount:kube-system:generic-garbage-collector",
              "system:serviceaccount:kube-system:namespace-controller", "system:kube-controller-manager")
NODES = "system:nodes"
ENTRIES = ("ephemeralcontainers", "exec", "attach", "portforward", "proxy")  # a way into a pod, each refused
MARK = "voicefleet.io/"  # the prefix of voicefleet's labels and annotations


@dataclass(frozen=True)
class AdmissionArgs:
    prefix: str  # the policy is cluster-scoped: the stack's prefix lets two stacks share a cluster
    bot_namespace: str
    dispatcher: tuple[str, str]  # its ServiceAccount: namespace, name
    bot_account: str  # the bots' ServiceAccount, in bot_namespace
    controller: tuple[str, str]  # agent-sandbox's controller's ServiceAccount: namespace, name
    deployer: str  # the user name the API server sees for the stack's kubeconfig
    labels: dict[str, str]


def account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def quoted(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def rule(groups: list[str], operations: list[str], resources: list[str], versions: str = "*") -> dict[str, Any]:
    return {"api_groups": groups, "api_versions": [versions], "operations": operations, "resources": resources}


def came_from(message: str, args: AdmissionArgs) -> str:
    """CEL: the message, naming the controller the policy was given and the user the API server saw (a
    wrong `k8sSandboxController` refuses every pod the real controller makes: this says why)."""
    return (f"\"{message} (the controller: {account(*args.controller)}, the stack's k8sSandboxController); "
            "this request came from \" + request.userInfo.username")


def same_marks(kind: str) -> str:
    """CEL: an update leaves the object's `voicefleet.io/` `kind` (labels or annotations) as they were."""
    new = f"(has(object.metadata.{kind}) ? object.metadata.{kind} : {{}})"
    old = f"(has(oldObject.metadata.{kind}) ? oldObject.metadata.{kind} : {{}})"
    return (f"{new}.filter(k, k.startsWith('{MARK}')).all(k, k in {old} && {old}[k] == {new}[k]) && "
            f"{old}.filter(k, k.startsWith('{MARK}')).all(k, k in {new})")


def policy_spec(args: AdmissionArgs) -> dict[str, Any]:
    spec = _policy_spec(args)
    for validation in spec["validations"]:
        # 403, as an RBAC refusal: pulumi-kubernetes' preview passes over a Forbidden server-side dry run
        # (provider.go, Create and Update in preview), so an `up` that fixes k8sDeployer or
        # k8sSandboxController is not stopped at its preview by the policy it is about to change.
        validation["reason"] = "Forbidden"
    return spec


def _policy_spec(args: AdmissionArgs) -> dict[str, Any]:
    writes = ["CREATE", "UPDATE", "DELETE"]
    return {
        "failure_policy": "Fail",
        "match_constraints": {
            "namespace_selector": {"match_labels": {NAME_LABEL: args.bot_namespace}},
            "resource_rules": [
                rule([""], ["CREATE", "UPDATE"], ["pods"], "v1"),
                rule([""], ["*"], [f"pods/{entry}" for entry in ENTRIES], "v1"),
                rule([SANDBOX_GROUP], writes, ["sandboxes"]),
                # Not DELETE: a delete plants nothing, RBAC guards it, and a destroy by another user than
                # k8sDeployer must not stop halfway with the pool left running and no dispatcher.
                rule([POOL_GROUP], ["CREATE", "UPDATE"], ["sandboxtemplates", "sandboxwarmpools"]),
                rule([POOL_GROUP], ["CREATE", "UPDATE"], ["sandboxclaims"]),
                rule([""], ["CREATE"], ["serviceaccounts/token"], "v1"),
            ],
        },
        "variables": [
            {"name": "user", "expression": "request.userInfo.username"},
            {"name": "controller", "expression": f"variables.user == '{account(*args.controller)}'"},
            {"name": "collector", "expression": f"variables.user in {quoted(COLLECTORS)}"},
            {"name": "marks", "expression": " && ".join(same_marks(kind) for kind in ("labels", "annotations"))},
            {"name": "owners", "expression": (
                "request.operation != 'UPDATE' || "
                "(has(object.metadata.ownerReferences) ? object.metadata.ownerReferences : []) == "
                "(has(oldObject.metadata.ownerReferences) ? oldObject.metadata.ownerReferences : [])")},
        ],
        "validations": [
            {"expression": f"!(request.subResource in {quoted(ENTRIES)})",
             "message": "nobody adds ephemeral containers to, execs into, attaches to, port-forwards or proxies to "
                        "the bots' pods"},
            {"expression": (
                "request.resource.resource != 'pods' || request.subResource != '' || "
                "(request.operation == 'CREATE' ? variables.controller : "
                "object.spec == oldObject.spec && (variables.owners || variables.controller || variables.collector) && "
                "(variables.marks || variables.controller))"),
             "message": "only agent-sandbox's controller creates the bots' pods, and nobody changes their spec, "
                        "owners or voicefleet.io/ labels and annotations",
             "message_expression": came_from("only agent-sandbox's controller creates the bots' pods, and nobody "
                                             "changes their spec, owners or voicefleet.io/ labels and annotations",
                                             args)},
            {"expression": ("request.resource.resource != 'sandboxes' || variables.controller || "
                            "(request.operation != 'CREATE' && variables.collector)"),
             "message": "only agent-sandbox's controller creates, changes or deletes Sandboxes",
             "message_expression": came_from("only agent-sandbox's controller creates, changes or deletes Sandboxes",
                                             args)},
            {"expression": (
                "!(request.resource.resource in ['sandboxtemplates', 'sandboxwarmpools']) || "
                f"request.subResource != '' || variables.user == '{args.deployer}' || "
                # The controller labels its templates and the collector un-owns: metadata, never the spec, which
                # names the image a replica admits while a new one rolls out (dispatcher/machines/k8s/pool_bots.py).
                "(request.operation == 'UPDATE' && (variables.controller || variables.collector) && "
                "object.spec == oldObject.spec)"),
             "message": "only voicefleet's deployer creates or changes the bots' SandboxTemplates and "
                        "SandboxWarmPools",
             # Names the user the API server saw: a k8sDeployer that is not the kubeconfig's user shows at once.
             "message_expression": (
                 f"\"only voicefleet's deployer ({args.deployer}, the stack's k8sDeployer) creates or changes the "
                 "bots' SandboxTemplates and SandboxWarmPools; this request came from \" + request.userInfo.username")},
            {"expression": (
                f"request.resource.resource != 'sandboxclaims' || variables.user == '{account(*args.dispatcher)}' || "
                "(request.operation == 'UPDATE' && "
                "(object.spec == oldObject.spec || variables.controller || variables.collector))"),
             "message": "only the dispatcher creates SandboxClaims, and only it, the controller or the collector "
                        "changes their spec"},
            {"expression": (
                "!(request.resource.resource == 'serviceaccounts' && request.subResource == 'token' && "
                f"request.name == '{args.bot_account}') || '{NODES}' in request.userInfo.groups"),
             "message": "only the kubelets mint tokens for the bots' ServiceAccount"},
        ],
    }


class BotAdmission(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:BotAdmission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy_name = f"{args.prefix}-bots-made-by-the-controller"
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-bots", metadata={"name": policy_name, "labels": args.labels},
            spec=cast(k8s.admissionregistration.v1.ValidatingAdmissionPolicySpecArgsDict, policy_spec(args)),
            opts=child)
        binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-bots", metadata={"name": policy_name, "labels": args.labels},
            spec={"policy_name": policy.metadata.name, "validation_actions": ["Deny"]}, opts=child)
        self.objects: tuple[pulumi.Resource, ...] = (policy, binding)
        self.register_outputs({})

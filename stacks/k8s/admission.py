"""What no read can prove, refused at admission: who may make, change or enter the bots' pods.

Who created or changed an object is not on it (docs/kubernetes.md, "The warm path", "Identity"). So a
ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA since Kubernetes 1.30) and its Binding
hold the bots' namespace to, in either mode:

- only the kubelets (`system:nodes`) mint tokens for the bots' ServiceAccount;
- nobody adds an ephemeral container to, execs into, attaches to, port-forwards to or proxies to a pod;
- a pod's update (by anyone) leaves its `spec`, its owners unless the garbage collector changes them,
  and its `voicefleet.io/` labels and annotations unless their maker changes them.

agent-sandbox: only the controller creates pods, or creates, changes or deletes Sandboxes (the collector
and the namespace's deletion change and delete them too); only the deployer (`k8sDeployer`) creates
SandboxTemplates and SandboxWarmPools or changes their `spec` (their `scale` matches no rule: the
dispatcher's `PATCH …/scale`, `kubectl scale` and an HPA keep working; deletes are RBAC's); only the
dispatcher creates SandboxClaims, and only it, the controller or the collector changes their `spec`, which
holds only what `claim_body` sends: no `env`, no pod label and one pod annotation (the session's id).

pods: only the dispatcher creates pods, each what its `pod_body` builds (stacks/k8s/bot_pods_policy.py),
and only it changes their `voicefleet.io/` marks (a claim).

In CEL, `object` is null on a DELETE and `oldObject` on a CREATE. Every name written into an expression
is checked first (DNS labels; the deployer's user name has no quote or backslash: stacks/config/k8s.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes.admissionregistration as k8s_admissionregistration

from dispatcher.machines.k8s.claims import FINISHED_KEEP_SECONDS, GROUP_VERSION, NOTE_SESSION
from dispatcher.machines.k8s.pods import LABEL_SESSION
from dispatcher.machines.k8s.pool_bots import SANDBOX_GROUP
from dispatcher.machines.k8s.settings import AGENT_SANDBOX, PODS
from stacks.k8s import bot_pods_policy
from stacks.k8s.bot_pods_policy import BotPod
from stacks.k8s.cel import account, literal, quoted, same_marks
from stacks.k8s.namespaces import NAME_LABEL

POOL_GROUP = GROUP_VERSION.split("/", 1)[0]
# Who deletes or un-owns what a deleted owner leaves, and empties a deleted namespace.
COLLECTORS = ("system:serviceaccount:kube-system:generic-garbage-collector",
              "system:serviceaccount:kube-system:namespace-controller", "system:kube-controller-manager")
NODES = "system:nodes"
ENTRIES = ("ephemeralcontainers", "exec", "attach", "portforward", "proxy")  # a way into a pod, each refused
# The policy's name, per mode: who makes the bots' pods.
POLICY_NAMES = {AGENT_SANDBOX: "bots-made-by-the-controller", PODS: "bots-made-by-the-dispatcher"}


@dataclass(frozen=True)
class AdmissionArgs:
    prefix: str  # the policy is cluster-scoped: the stack's prefix lets two stacks share a cluster
    bot_namespace: str
    dispatcher: tuple[str, str]  # its ServiceAccount: namespace, name
    bot_account: str  # the bots' ServiceAccount, in bot_namespace
    labels: dict[str, str]
    mode: str = AGENT_SANDBOX
    # agent-sandbox: the controller's ServiceAccount (namespace, name), and the user name the API server
    # sees for the stack's kubeconfig
    controller: tuple[str, str] = ("", "")
    deployer: str = ""
    # pods: what the dispatcher's pods are, once known (their images include the last `up`'s)
    bot_pod: pulumi.Input[BotPod] | None = None


def rule(groups: list[str], operations: list[str], resources: list[str], versions: str = "*") -> dict[str, Any]:
    return {"api_groups": groups, "api_versions": [versions], "operations": operations, "resources": resources}


def came_from(message: str, maker: str) -> str:
    """CEL: the message, naming the maker the policy was given and the user the API server saw (a
    wrong `k8sSandboxController` refuses every pod the real controller makes: this says why)."""
    return f"\"{message} ({maker}); this request came from \" + request.userInfo.username"


def policy_spec(args: AdmissionArgs, pod: BotPod | None = None) -> dict[str, Any]:
    spec = _policy_spec(args, pod)
    for validation in spec["validations"]:
        # 403, as an RBAC refusal: pulumi-kubernetes' preview passes over a Forbidden server-side dry run
        # (provider.go, Create and Update in preview), so an `up` that fixes k8sDeployer or
        # k8sSandboxController is not stopped at its preview by the policy it is about to change.
        validation["reason"] = "Forbidden"
    return spec


def pods_validation(maker: str, who: str, made_by: str) -> dict[str, Any]:
    """Who creates the bots' pods (`maker`, a variable), and what an update leaves as it was."""
    message = (f"only {who} creates the bots' pods, and nobody changes their spec, owners or voicefleet.io/ "
               "labels and annotations")
    return {"expression": (
        "request.resource.resource != 'pods' || request.subResource != '' || "
        f"(request.operation == 'CREATE' ? {maker} : "
        f"object.spec == oldObject.spec && (variables.owners || {maker} || variables.collector) && "
        f"(variables.marks || {maker}))"),
        "message": message, "message_expression": came_from(message, made_by)}


def _policy_spec(args: AdmissionArgs, pod: BotPod | None) -> dict[str, Any]:
    if args.mode == PODS:
        assert pod is not None
        maker = {"name": "dispatcher", "expression": f"variables.user == '{account(*args.dispatcher)}'"}
        rules = [rule([""], ["CREATE", "UPDATE"], ["pods"], "v1")]
        own_variables = [*bot_pods_policy.variables(pod)]
        own = [pods_validation("variables.dispatcher", "the dispatcher",
                               f"the dispatcher: {account(*args.dispatcher)}"),
               *bot_pods_policy.validations(pod)]
    else:
        maker = {"name": "controller", "expression": f"variables.user == '{account(*args.controller)}'"}
        rules, own_variables, own = sandbox_rules(), [], sandbox_validations(args)
    return {
        "failure_policy": "Fail",
        "match_constraints": {
            "namespace_selector": {"match_labels": {NAME_LABEL: args.bot_namespace}},
            "resource_rules": [
                rules[0],
                rule([""], ["*"], [f"pods/{entry}" for entry in ENTRIES], "v1"),
                *rules[1:],
                rule([""], ["CREATE"], ["serviceaccounts/token"], "v1"),
            ],
        },
        "variables": [
            {"name": "user", "expression": "request.userInfo.username"},
            maker,
            {"name": "collector", "expression": f"variables.user in {quoted(COLLECTORS)}"},
            {"name": "marks", "expression": " && ".join(same_marks(kind) for kind in ("labels", "annotations"))},
            {"name": "owners", "expression": (
                "request.operation != 'UPDATE' || "
                "(has(object.metadata.ownerReferences) ? object.metadata.ownerReferences : []) == "
                "(has(oldObject.metadata.ownerReferences) ? oldObject.metadata.ownerReferences : [])")},
            *own_variables,
        ],
        "validations": [
            {"expression": f"!(request.subResource in {quoted(ENTRIES)})",
             "message": "nobody adds ephemeral containers to, execs into, attaches to, port-forwards or proxies to "
                        "the bots' pods"},
            *own,
            {"expression": (
                "!(request.resource.resource == 'serviceaccounts' && request.subResource == 'token' && "
                f"request.name == '{args.bot_account}') || '{NODES}' in request.userInfo.groups"),
             "message": "only the kubelets mint tokens for the bots' ServiceAccount"},
        ],
    }


def sandbox_rules() -> list[dict[str, Any]]:
    return [
        rule([""], ["CREATE", "UPDATE"], ["pods"], "v1"),
        rule([SANDBOX_GROUP], ["CREATE", "UPDATE", "DELETE"], ["sandboxes"]),
        # Not DELETE: a delete plants nothing, RBAC guards it, and a destroy by another user than
        # k8sDeployer must not stop halfway with the pool left running and no dispatcher.
        rule([POOL_GROUP], ["CREATE", "UPDATE"], ["sandboxtemplates", "sandboxwarmpools"]),
        rule([POOL_GROUP], ["CREATE", "UPDATE"], ["sandboxclaims"]),
    ]


def sandbox_validations(args: AdmissionArgs) -> list[dict[str, Any]]:
    controller = f"the controller: {account(*args.controller)}, the stack's k8sSandboxController"
    return [
        pods_validation("variables.controller", "agent-sandbox's controller", controller),
        {"expression": ("request.resource.resource != 'sandboxes' || variables.controller || "
                        "(request.operation != 'CREATE' && variables.collector)"),
         "message": "only agent-sandbox's controller creates, changes or deletes Sandboxes",
         "message_expression": came_from("only agent-sandbox's controller creates, changes or deletes Sandboxes",
                                         controller)},
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
        # A claim's spec reaches its pod: its env over the template's (the trace endpoint among it, which would
        # carry the bots' Secret's collector headers elsewhere; the controller refuses it only while the template
        # leaves envVarsInjectionPolicy at Disallowed), and its pod metadata, which a mutating webhook may act on
        # (the OpenTelemetry Operator's inject annotation names any namespace's Instrumentation). So it holds what
        # claims.py `claim_body` sends, each field of the CRD's served versions named (CEL cannot list an object's).
        {"expression": ("request.resource.resource != 'sandboxclaims' || !has(object.spec) || "
                        "(request.operation == 'UPDATE' && (object.spec == oldObject.spec || variables.controller || "
                        f"variables.collector)) || {claim_spec('object')}"),
         "message": CLAIM_SPEC},
    ]


# What a claim's spec holds (dispatcher/machines/k8s/claims.py `claim_body`).
SHUTDOWN_POLICY = "DeleteForeground"  # the claim, its Sandbox and its pod go at its end
CLAIM_SPEC = (f"a SandboxClaim's spec is what the dispatcher sends: its warm pool (warmPoolRef), its lifecycle "
              f"(a shutdownTime, shutdownPolicy {SHUTDOWN_POLICY}, ttlSecondsAfterFinished at most "
              f"{FINISHED_KEEP_SECONDS}), and one annotation on its pod, {NOTE_SESSION}, its session's id: no env "
              "(a bot's environment is its SandboxTemplate's), volume claim, template of its own, pod label or other "
              "annotation (a mutating webhook may act on one)")
# The fields of the CRD's served versions (v1beta1, v1alpha1) that `claim_body` never sends.
UNSENT = ("env", "volumeClaimTemplates", "sandboxTemplateRef", "warmpool")


def claim_spec(claim: str) -> str:
    """CEL: the claim's spec holds only what `claim_body` sends."""
    spec, pod = f"{claim}.spec", f"{claim}.spec.additionalPodMetadata"
    session = f"{claim}.metadata.labels[{literal(LABEL_SESSION)}]"
    # Its end: a shutdownTime (the policy has no clock to bound it by: the dispatcher's reaper ends a claim past
    # its session's cap), deleted with its Sandbox and pod, and kept at most as long once finished.
    life = f"{spec}.lifecycle"
    ends = (f"has({life}) && has({life}.shutdownTime) && has({life}.shutdownPolicy) && "
            f"{life}.shutdownPolicy == {literal(SHUTDOWN_POLICY)} && has({life}.ttlSecondsAfterFinished) && "
            f"{life}.ttlSecondsAfterFinished <= {FINISHED_KEEP_SECONDS}")
    return ("(" + " && ".join(f"!has({spec}.{name})" for name in UNSENT) + f" && {ends} && (!has({pod}) || "
            f"(!has({pod}.labels) && (!has({pod}.annotations) || {pod}.annotations.all(k, k == "
            f"{literal(NOTE_SESSION)} && has({claim}.metadata.labels) && {literal(LABEL_SESSION)} in "
            f"{claim}.metadata.labels && {pod}.annotations[k] == {session})))))")


class BotAdmission(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:BotAdmission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy_name = f"{args.prefix}-{POLICY_NAMES[args.mode]}"
        spec: pulumi.Input[dict[str, Any]] = (
            policy_spec(args) if args.bot_pod is None else
            pulumi.Output.from_input(args.bot_pod).apply(lambda pod: policy_spec(args, pod)))
        policy = k8s_admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-bots", metadata={"name": policy_name, "labels": args.labels},
            spec=cast(pulumi.Input[k8s_admissionregistration.v1.ValidatingAdmissionPolicySpecArgsDict], spec),
            opts=child)
        binding = k8s_admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-bots", metadata={"name": policy_name, "labels": args.labels},
            spec={"policy_name": policy.metadata.name, "validation_actions": ["Deny"]}, opts=child)
        self.objects: tuple[pulumi.Resource, ...] = (policy, binding)
        self.register_outputs({})

"""Who the dispatcher and the bots are to the API server, and the least the dispatcher may do.

The pods provider (dispatcher/machines/k8s/api.py) reads and writes bare pods in the bots' namespace
only: create, get, list (the reaper's and the reserve's label-selected pages), patch (a warm claim's
JSON Patch), delete. A bot's hello is checked with a TokenReview (dispatcher/machines/k8s/identity.py),
the one cluster-wide verb: a ClusterRole of `tokenreviews` `create` alone, narrower than
`system:auth-delegator` (which adds subjectaccessreviews). Nothing else, nowhere else.

In the `agent-sandbox` mode the controller creates the pods, so the Role loses `pods` create, patch and
delete and gains the claims' verbs (dispatcher/machines/k8s/sandbox.py CLAIM_VERBS): SandboxClaims
create, get, list, watch, delete; SandboxWarmPools get and list (the releases' pools, found by
label: dispatcher/machines/k8s/release_pools.py), and their `scale` get and patch;
SandboxTemplates get (the image a new bot image's pods run while the dispatcher rolls); pods get,
list, watch (a hello's pod, read back); Sandboxes get (`agents.x-k8s.io`: a pool bot's owner).

The bots' ServiceAccount has no role at all and its API token is never mounted
(`automountServiceAccountToken: false`, here and in each pod): it is only the subject of the
projected identity token each bot pod carries for voicefleet's audience, and, with the stack's
`botPermissions`, of its cloud's workload identity (one annotation: EKS's role ARN, GKE's service
account, Azure's client id), which the cloud's own webhook or metadata server turns into credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes.core as k8s_core
import pulumi_kubernetes.rbac as k8s_rbac

from dispatcher.machines.k8s.claims import GROUP_VERSION
from dispatcher.machines.k8s.pool_bots import SANDBOX_GROUP
from dispatcher.machines.k8s.settings import AGENT_SANDBOX, PODS

# (resource, verbs) the pods provider calls, in the bots' namespace.
POD_VERBS = ("create", "delete", "get", "list", "patch", "watch")
TOKEN_REVIEW_VERBS = ("create",)
POOL_GROUP = GROUP_VERSION.split("/", 1)[0]  # extensions.agents.x-k8s.io
# (API group, resource, verbs) per mode, in the bots' namespace.
RULES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    PODS: (("", "pods", POD_VERBS),),
    AGENT_SANDBOX: (
        (POOL_GROUP, "sandboxclaims", ("create", "delete", "get", "list", "watch")),
        (POOL_GROUP, "sandboxwarmpools", ("get", "list")),  # list: the releases' pools, by label
        (POOL_GROUP, "sandboxtemplates", ("get",)),
        (POOL_GROUP, "sandboxwarmpools/scale", ("get", "patch")),
        ("", "pods", ("get", "list", "watch")),
        (SANDBOX_GROUP, "sandboxes", ("get",)),
    ),
}
DISPATCHER_ACCOUNT = "voicefleet-dispatcher"
BOT_ACCOUNT = "voicefleet-bot"


@dataclass(frozen=True)
class AccessArgs:
    prefix: str  # cluster-scoped names carry the stack's, so two stacks share a cluster
    dispatcher_namespace: pulumi.Input[str]
    bot_namespace: pulumi.Input[str]
    labels: dict[str, str]
    mode: str = PODS  # K8S_MODE: which calls the dispatcher makes (RULES)
    # The bots' workload identity (voicefleet:botPermissions): one cloud's annotation, on their ServiceAccount.
    bot_annotations: Mapping[str, str] = field(default_factory=dict)
    # The registry's pull Secrets (stacks/k8s/pull_secret.py), dispatcher's and bots': every pod made as
    # either account pulls with its namespace's. None: the nodes pull with their own rights.
    pull_secrets: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None
    # What the bots' account's annotations wait for: the admission policy that admits what the cloud's webhook
    # adds to its pods once they name a role (stacks/k8s/bot_pods_policy.py).
    bot_after: tuple[pulumi.Resource, ...] = ()


def role_ref(kind: str, name: pulumi.Input[str]) -> k8s_rbac.v1.RoleRefArgsDict:
    return {"api_group": "rbac.authorization.k8s.io", "kind": kind, "name": name}


class Access(pulumi.ComponentResource):
    dispatcher_account: pulumi.Output[str]
    bot_account: pulumi.Output[str]
    grants: list[pulumi.Resource]

    def __init__(self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:Access", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pulls: list[list[k8s_core.v1.LocalObjectReferenceArgsDict] | None] = [None, None] \
            if args.pull_secrets is None else [[{"name": pull}] for pull in args.pull_secrets]
        dispatcher = k8s_core.v1.ServiceAccount(f"{name}-dispatcher", metadata={
            "name": DISPATCHER_ACCOUNT, "namespace": args.dispatcher_namespace, "labels": args.labels},
            image_pull_secrets=pulls[0], opts=child)
        bot = k8s_core.v1.ServiceAccount(f"{name}-bot", metadata={
            "name": BOT_ACCOUNT, "namespace": args.bot_namespace, "labels": args.labels,
            **({"annotations": dict(args.bot_annotations)} if args.bot_annotations else {})},
            automount_service_account_token=False, image_pull_secrets=pulls[1],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.bot_after)))
        subject: k8s_rbac.v1.SubjectArgsDict = {"kind": "ServiceAccount", "name": dispatcher.metadata.name,
                                                "namespace": args.dispatcher_namespace}
        role = k8s_rbac.v1.Role(f"{name}-pods", metadata={
            "name": DISPATCHER_ACCOUNT, "namespace": args.bot_namespace, "labels": args.labels},
            rules=[{"api_groups": [group], "resources": [resource], "verbs": list(verbs)}
                   for group, resource, verbs in RULES[args.mode]], opts=child)
        pods = k8s_rbac.v1.RoleBinding(f"{name}-pods", metadata={
            "name": DISPATCHER_ACCOUNT, "namespace": args.bot_namespace, "labels": args.labels},
            role_ref=role_ref("Role", role.metadata.name),
            subjects=[subject], opts=child)
        reviews = k8s_rbac.v1.ClusterRole(f"{name}-token-reviews", metadata={
            "name": f"{args.prefix}-token-reviews", "labels": args.labels},
            rules=[{"api_groups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                    "verbs": list(TOKEN_REVIEW_VERBS)}], opts=child)
        reviewer = k8s_rbac.v1.ClusterRoleBinding(f"{name}-token-reviews", metadata={
            "name": f"{args.prefix}-token-reviews", "labels": args.labels},
            role_ref=role_ref("ClusterRole", reviews.metadata.name),
            subjects=[subject], opts=child)
        self.dispatcher_account = dispatcher.metadata.name
        self.bot_account = bot.metadata.name
        self.grants = [pods, reviewer]
        # Kubernetes copies an account's imagePullSecrets onto a pod only when the pod is created: whatever
        # makes pods as them (the dispatcher, a pool) waits for both, or an `up` that adds the registry's
        # credentials could make pods that never get them and never pull.
        self.accounts: tuple[pulumi.Resource, ...] = (dispatcher, bot)
        self.register_outputs({"dispatcher_account": self.dispatcher_account, "bot_account": self.bot_account})

"""The agent-sandbox mode's SandboxTemplate and the SandboxWarmPool on it, in the bots' namespace.

Both `extensions.agents.x-k8s.io/v1beta1` (agent-sandbox v0.5's storage version; the CRDs' schemas:
tests/fakes/agent_sandbox_crds/), both named as the dispatcher's K8S_WARM_POOL. The template's pod is
the `pods` mode's bot pod (stacks/k8s/pool_template.py) and its `networkPolicy` the bots' own egress
(stacks/k8s/network_policies.py `bot_egress`): given rules replace the controller's default, which
blocks the cluster's DNS and every private range, the dispatcher's pods among them; an empty `ingress`
takes none. The pool's `updateStrategy` is `Recreate`, so a new image retires the warm Sandboxes of the
old template at once (the default, `OnReplenish`, keeps them until claimed; the dispatcher refuses to
start on a pool that is not `Recreate`). A release's pool's `spec.replicas` is the dispatcher's, through
the `scale` subresource: the stack sets it once, at creation, and ignores it afterwards. A pool the
dispatcher never sizes (`sized_by_dispatcher` false: the default pool while the stack lists releases)
is the stack's at its size every `up`.

agent-sandbox itself (its CRDs and controller, cluster-wide) is adopted or installed by
stacks/k8s/agent_sandbox.py; every template and pool waits for it (`after`, and the namespace gated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes.apiextensions as k8s_apiextensions

from dispatcher.machines.k8s.claims import GROUP_VERSION
from dispatcher.machines.k8s.pods import LABEL_RETIRING

REPLICAS_PATH = "spec.replicas"  # the dispatcher's (PATCH …/scale), never the stack's after creation


@dataclass(frozen=True)
class WarmPoolArgs:
    name: str  # K8S_WARM_POOL, the template's name too
    namespace: pulumi.Input[str]
    pod_template: pulumi.Input[dict[str, Any]]  # stacks/k8s/pool_template.py pool_pod
    egress: list[dict[str, Any]]  # stacks/k8s/network_policies.py bot_egress
    replicas: int  # at creation only, unless the dispatcher never sizes the pool
    labels: Mapping[str, str]
    after: tuple[pulumi.Resource, ...] = ()  # the bots' admission policy and agent-sandbox itself
    sized_by_dispatcher: bool = True  # its `scale` is the dispatcher's: the stack's replicas at creation only
    # a release's pool kept for its last sessions: labelled for the dispatcher to empty (known once this `up`'s
    # build is: a kept release may turn retiring by it)
    retiring: pulumi.Input[bool] = False


# A pool the stack sizes every `up` takes `spec.replicas` back even from the `scale` writes of a dispatcher
# that once sized it (the default pool, before the pools per release): pulumi-kubernetes' server-side apply
# fails on a field another manager owns unless forced (its `patchForce`), so the `up` would stop there.
STACK_SIZED = {"pulumi.com/patchForce": "true"}


def pool_metadata(metadata: dict[str, Any], *, sized_by_dispatcher: bool, retiring: pulumi.Input[bool]
                  ) -> dict[str, Any]:
    """The pool's metadata: its template's, forced to its size when the stack sizes it, labelled when retiring."""
    labels = pulumi.Output.from_input(retiring).apply(
        lambda retired: {**metadata["labels"], **({LABEL_RETIRING: "true"} if retired else {})})
    return {**metadata, "labels": labels, **({} if sized_by_dispatcher else {"annotations": dict(STACK_SIZED)})}


def template_spec(pod_template: pulumi.Input[dict[str, Any]], egress: list[dict[str, Any]]) -> dict[str, Any]:
    return {"podTemplate": pod_template, "networkPolicy": {"ingress": [], "egress": egress}}


def pool_spec(name: str, replicas: int) -> dict[str, Any]:
    return {"replicas": replicas, "sandboxTemplateRef": {"name": name}, "updateStrategy": {"type": "Recreate"}}


class WarmPool(pulumi.ComponentResource):
    def __init__(self, name: str, args: WarmPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:WarmPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        metadata = {"name": args.name, "namespace": args.namespace, "labels": dict(args.labels)}
        template = k8s_apiextensions.CustomResource(
            f"{name}-template", api_version=GROUP_VERSION, kind="SandboxTemplate", metadata=metadata,
            spec=template_spec(args.pod_template, args.egress), opts=child)
        pool = k8s_apiextensions.CustomResource(
            f"{name}-pool", api_version=GROUP_VERSION, kind="SandboxWarmPool",
            metadata=pool_metadata(metadata, sized_by_dispatcher=args.sized_by_dispatcher, retiring=args.retiring),
            spec=pool_spec(args.name, args.replicas),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.after, template],
                                        ignore_changes=[REPLICAS_PATH] if args.sized_by_dispatcher else None))
        self.objects: tuple[pulumi.Resource, ...] = (template, pool)
        self.pool_name: pulumi.Output[str] = pool.id.apply(lambda _: args.name)  # known once the pool exists
        self.register_outputs({})

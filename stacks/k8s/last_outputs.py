"""What the stack's last `up` left, read back, and the changes the program refuses against it.

The program sees only the configuration of this `up`; what runs is what the last one made. Its
outputs say that (read back through a StackReference to the stack itself, as stacks/shared/releases.py
reads its releases). The changes refused here, whatever tool runs the `up`:

- a new `k8sBotNamespace` or `k8sDispatcherNamespace`: pulumi-kubernetes replaces a Namespace whose
  name changes, and the old one is deleted at the end of the `up` with every pod in it (the bots'
  running sessions, or the dispatcher and its relayed calls). A stack whose last `up` was drained
  (`drain: true`, no dispatcher launching bots) may move;
- a new `k8sModelNamespace` while the last `up` ran the model: its Deployment would be created in the
  new namespace before the old one goes, its pod waiting for the GPU the old pod holds, so every `up`
  fails at its timeout and the stack's URL and policies name the empty namespace meanwhile;
- agent-sandbox: a new `k8sDeployer` with a change to the bots' templates or pools in the same `up`
  (their spec, or their metadata: labels, release names, a pool turned retiring). The admission policy
  naming the new deployer is updated first, and the API server takes about a second to enforce it:
  their update, by the new deployer, can be judged by the old policy meanwhile and refused;
- agent-sandbox: `k8sAgentSandbox` from `install` to `adopt`. The `up` would delete the installed release,
  its CRDs first among them, and with them every Sandbox, claim, template and pool in the cluster: the
  stack's own, which it then still counts as there, and every other tenant's.

The provider's kubeconfig waits for these checks, so a refused `up` registers nothing in the cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pulumi

from dispatcher.machines.k8s.settings import AGENT_SANDBOX
from stacks.config.k8s import AGENT_SANDBOX_KEY, INSTALL
from stacks.config.k8s_model import NAMESPACE_KEY as MODEL_NAMESPACE_KEY
from stacks.config.k8s_model import REPLICAS_KEY as MODEL_REPLICAS_KEY
from stacks.config.model import KubernetesSettings
from stacks.config.reader import SettingsError
from stacks.config.refused import reported_once
from stacks.shared.releases import own_stack

# The outputs read back (K8sStack.outputs writes them).
BOT_NAMESPACE, DISPATCHER_NAMESPACE = "botNamespace", "dispatcherNamespace"
BOT_IMAGE, DEPLOYER, TEMPLATE, DRAINED = "botImage", "deployer", "botTemplate", "drained"
BOT_LIFETIME = "botPodLifetime"  # pods: the longest activeDeadlineSeconds its dispatcher gives
SANDBOX_SOURCE = "agentSandbox"  # agent-sandbox: k8sAgentSandbox, adopt or install
BOT_ROLE = "botRole"  # pods: the EKS role botPermissions names on the bots' ServiceAccount (IRSA), if any
CHANNEL_TLS = "channelTls"  # k8sChannelTls: a mesh's label is removed after the policies are updated
BOT_SECRET = "botSecret"  # noqa: S105 - pods: the bots' keys' Secret its dispatcher names, if any
# The Secret it wrote from botSecrets and its slot, and those it kept while their replicas drain, each with its
# slot and the time it is kept until (stacks/k8s/bot_secret_generations.py)
KEYS_SECRET, KEYS_SLOT, KEYS_KEPT = "botKeysSecret", "botKeysSlot", "botKeysKept"
# How long a replica of its dispatcher drains, with the rollout's margin: the keep of the Secret it names when
# the next `up` replaces it, which may have lowered maxSessionSeconds (stacks/k8s/bot_secret_generations.py).
KEYS_GRACE = "dispatcherDrainSeconds"
MODEL_NAMESPACE, MODEL_REPLICAS = "modelNamespace", "modelReplicas"  # k8sModelImage: where its pod ran, and how many
CELL_NAMES = "k8sCellNames"  # the k8sCells its dispatcher looks sessions up in (stacks/k8s/cells.py `removed`)
BOT_TRACES = "botTraceEnvironment"  # pods: the OTEL_* variables its dispatcher tells its pods (bot_trace_env.py)
BOT_PINS = "botPinnedEnvironment"  # pods: the other values the stack derives for its pods (bot_env_allow.py)
BOT_RESOURCES = "botResources"  # pods: K8S_BOT_CPU, K8S_BOT_MEMORY, K8S_STOP_GRACE_SECONDS (bot_pod_fields.py)
READ = (BOT_NAMESPACE, DISPATCHER_NAMESPACE, BOT_IMAGE, DEPLOYER, TEMPLATE, DRAINED, BOT_LIFETIME, SANDBOX_SOURCE,
        BOT_ROLE, CHANNEL_TLS, BOT_SECRET, KEYS_SECRET, KEYS_SLOT, KEYS_KEPT, KEYS_GRACE, MODEL_NAMESPACE,
        MODEL_REPLICAS, CELL_NAMES, BOT_TRACES, BOT_PINS, BOT_RESOURCES)
MOVES = "docs/kubernetes.md, \"Moving to other namespaces\""


@dataclass(frozen=True)
class Kept:
    """A bots' keys' Secret an `up` replaced, kept in its slot until its replicas have drained."""

    name: str
    slot: str
    until: datetime

    def as_output(self) -> dict[str, str]:
        return {"name": self.name, "slot": self.slot, "until": self.until.isoformat()}

    @classmethod
    def read(cls, value: object) -> Kept | None:
        """One read back; None if it is not one (an output edited by hand): then it is not kept."""
        if not isinstance(value, Mapping):
            return None
        name, slot, until = value.get("name"), value.get("slot"), value.get("until")
        if not (isinstance(name, str) and name and isinstance(slot, str) and isinstance(until, str)):
            return None
        try:
            moment = datetime.fromisoformat(until)
        except ValueError:
            return None
        return cls(name, slot, moment) if moment.tzinfo is not None else None


@dataclass(frozen=True)
class LastUp:
    """The last `up`'s outputs this program reads (all None before the first `up`)."""

    bot_namespace: str | None = None
    dispatcher_namespace: str | None = None
    bot_image: str | None = None
    deployer: str | None = None
    template: str | None = None  # template_digest of the agent-sandbox bots' template
    drained: bool = False
    bot_lifetime: int | None = None
    agent_sandbox: str | None = None  # k8sAgentSandbox (agent-sandbox mode only)
    bot_role: str | None = None  # the bots' account's EKS role (pods mode only)
    channel_tls: str | None = None  # k8sChannelTls
    bot_secret: str | None = None  # the bots' keys' Secret (pods mode only)
    keys_secret: str | None = None  # the Secret it wrote from botSecrets (either mode)
    keys_slot: str | None = None  # that Secret's slot
    keys_kept: tuple[Kept, ...] = ()  # the earlier ones it kept
    keys_grace: int | None = None  # how long its dispatcher's replicas drain, with the rollout's margin
    model_namespace: str | None = None  # the model service's namespace (k8sModelImage only)
    model_replicas: int | None = None  # its replicas then
    cell_names: tuple[str, ...] = ()  # its k8sCells (none: one cluster, or an `up` of an earlier release)
    traces: Mapping[str, str] = field(default_factory=dict)  # the OTEL_* variables its pods are told (pods mode)
    pins: Mapping[str, str] = field(default_factory=dict)  # the channel's URL and the other values they are told
    resources: Mapping[str, str] = field(default_factory=dict)  # its pods' cpu and memory (pods mode)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> LastUp:
        def text(key: str) -> str | None:
            value = values.get(key)
            return value if isinstance(value, str) and value else None

        return cls(bot_namespace=text(BOT_NAMESPACE), dispatcher_namespace=text(DISPATCHER_NAMESPACE),
                   bot_image=text(BOT_IMAGE), deployer=text(DEPLOYER), template=text(TEMPLATE),
                   drained=values.get(DRAINED) is True, bot_lifetime=seconds(values.get(BOT_LIFETIME)),
                   agent_sandbox=text(SANDBOX_SOURCE), bot_role=text(BOT_ROLE),
                   channel_tls=text(CHANNEL_TLS), bot_secret=text(BOT_SECRET), keys_secret=text(KEYS_SECRET),
                   keys_slot=text(KEYS_SLOT), keys_kept=kept(values.get(KEYS_KEPT)),
                   keys_grace=seconds(values.get(KEYS_GRACE)),
                   model_namespace=text(MODEL_NAMESPACE), model_replicas=seconds(values.get(MODEL_REPLICAS)),
                   cell_names=names(values.get(CELL_NAMES)), traces=texts(values.get(BOT_TRACES)),
                   pins=texts(values.get(BOT_PINS)), resources=texts(values.get(BOT_RESOURCES)))


def kept(value: object) -> tuple[Kept, ...]:
    found = [Kept.read(item) for item in value] if isinstance(value, list) else []
    return tuple(item for item in found if item is not None)


def names(value: object) -> tuple[str, ...]:
    """A list of names read back; what is not a name (an output edited by hand) is left out."""
    return tuple(item for item in value if isinstance(item, str) and item) if isinstance(value, list) else ()


def texts(value: object) -> dict[str, str]:
    """A map of names to values read back; an entry that is not text (an output edited by hand) is left out."""
    if not isinstance(value, Mapping):
        return {}
    return {key: item for key, item in value.items() if isinstance(key, str) and isinstance(item, str)}


def seconds(value: object) -> int | None:
    """A whole number (seconds, replicas) read back (a StackReference's numbers are doubles, as protobuf's Struct)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value)


def read(name: str) -> pulumi.Output[LastUp]:
    reference = pulumi.StackReference(f"{name}-last-up", stack_name=own_stack())
    return pulumi.Output.all(*(reference.get_output(key) for key in READ)).apply(
        lambda values: LastUp.of(dict(zip(READ, values, strict=True))))


def template_digest(pod: Mapping[str, Any], egress: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any]) -> str:
    """The bots' SandboxTemplates and SandboxWarmPools (the pod, their `networkPolicy`'s egress as rendered:
    its ranges, resolvers and the mesh's tunnel port, and what their metadata is made of: their labels, and
    the release settings that name the pools per release and label one retiring), as one value an output can
    carry and the next `up` compare. A metadata-only update is as much a deployer's write as a new pod: the
    policy refuses it from anyone else."""
    template = {"pod": pod, "egress": list(egress), "metadata": metadata}
    return "sha256:" + hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


def refuse_moved_namespaces(last: LastUp, cfg: KubernetesSettings) -> None:
    if last.drained:
        return
    for key, was, now, what in (
            ("k8sBotNamespace", last.bot_namespace, cfg.bot_namespace, "every bot pod in it, ending their sessions"),
            ("k8sDispatcherNamespace", last.dispatcher_namespace, cfg.dispatcher_namespace,
             "the dispatcher's replicas in it, ending the calls they relay")):
        if was is not None and was != now:
            raise SettingsError(
                f"Invalid stack configuration: {key} is {now!r}, but this stack's last `up` made {was!r}: a new "
                f"name replaces the namespace, and the old one is deleted at the end of the `up` with {what}. "
                f"Set it back (`pulumi config set {key} {was}`). To move: `pulumi config set drain true`, "
                f"`pulumi up`, wait until `kubectl get pods -n {last.bot_namespace} -l voicefleet.io/app=bot` lists "
                f"no pod, then change the name and `up` ({MOVES}); `protect: true` makes Pulumi refuse any "
                "replacement of the namespaces")


def refuse_moved_model(last: LastUp, cfg: KubernetesSettings) -> None:
    """The model's Deployment keeps its name in the new namespace, so pulumi-kubernetes does not ask for a
    delete first (pulumi-kubernetes provider/pkg/provider/provider.go Diff: a namespace change replaces,
    create-first): the new pod waits for the GPU the old one holds until the create times out, and the old
    Deployment is deleted only after an `up` that succeeds (pulumi/pulumi pkg/resource/deploy
    deployment_executor.go, pending deletes). So every `up` would fail the same way. Stopped first, no GPU
    is held and the move is one `up`."""
    if cfg.model is None or last.model_namespace is None or last.model_namespace == cfg.model.namespace:
        return
    if last.model_replicas == 0:
        return
    was, now = last.model_namespace, cfg.model.namespace
    raise SettingsError(
        f"Invalid stack configuration: {MODEL_NAMESPACE_KEY} is {now!r}, but this stack's last `up` runs the model "
        f"service in {was!r}: the new pod would wait for the GPU the running one holds, and every `up` would fail "
        f"at its timeout while converged starts are refused. Set it back (`pulumi config set {MODEL_NAMESPACE_KEY} "
        f"{was}`). To move: `pulumi config set {MODEL_REPLICAS_KEY} 0`, `pulumi up` (the pod drains its calls), "
        f"then change the name and set {MODEL_REPLICAS_KEY} back in the next `up` (docs/kubernetes.md, "
        "\"A shared GPU model service\")")


def refuse_deployer_with_template(last: LastUp, cfg: KubernetesSettings, template: str | None) -> None:
    if last.deployer is None or cfg.deployer is None or last.deployer == cfg.deployer:
        return
    if last.template is not None and template is not None and last.template != template:
        raise SettingsError(
            f"Invalid stack configuration: k8sDeployer changes from {last.deployer!r} to {cfg.deployer!r} in the "
            "same `up` as the bots' SandboxTemplates or SandboxWarmPools (bot image, the bots' sizes, settings or "
            "egress, their labels: environment, release, releasesKept): the admission "
            "policy naming the new deployer takes about a second to be enforced, and the template's update can be "
            "refused (403) meanwhile. Change k8sDeployer in an `up` of its own, then the rest "
            "(docs/kubernetes.md, \"The agent-sandbox mode\")")


def refuse_dropped_install(last: LastUp, cfg: KubernetesSettings) -> None:
    if last.agent_sandbox != INSTALL or cfg.mode != AGENT_SANDBOX or cfg.agent_sandbox == INSTALL:
        return
    raise SettingsError(
        f"Invalid stack configuration: {AGENT_SANDBOX_KEY} is {cfg.agent_sandbox}, but this stack installed "
        "agent-sandbox: the `up` would delete that install, its CRDs with it, and every Sandbox, claim, template "
        "and pool in the cluster, this stack's and every other tenant's. Set it back (`pulumi config set "
        f"{AGENT_SANDBOX_KEY} {INSTALL}`); to hand agent-sandbox to the cluster's owner, `pulumi destroy` this "
        "stack first (docs/kubernetes.md, \"agent-sandbox itself: install or adopt\")")


def checked(last: pulumi.Output[LastUp], cfg: KubernetesSettings,
            template: pulumi.Input[str] | None) -> pulumi.Output[LastUp]:
    """`last`, once the changes it refuses are ruled out (a failed check fails the program). `template`
    is known once the bot image it names is (a built one: once it is pushed)."""
    def check(found: LastUp, template: str | None) -> LastUp:
        try:
            refuse_moved_namespaces(found, cfg)
            refuse_moved_model(found, cfg)
            refuse_deployer_with_template(found, cfg, template)
            refuse_dropped_install(found, cfg)
        except SettingsError as refused:
            reported_once(refused)
            raise
        return found

    return pulumi.Output.all(last, template).apply(lambda found: check(found[0], found[1]))

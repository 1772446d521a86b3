"""The `pods` mode's part of the bots' admission policy: a bot pod is what the dispatcher's `pod_body` builds.

The dispatcher may create and patch pods in the bots' namespace (stacks/k8s/access.py), so its token,
leaked, could start any pod there. Pod Security `restricted` already forbids host access; the policy
(stacks/k8s/admission.py) holds each create to what dispatcher/machines/k8s/pods.py `pod_body` builds:

- only the dispatcher creates pods, and a pod's update leaves its `spec` (the dispatcher's claim changes
  labels and annotations alone), and its `voicefleet.io/` marks unless the dispatcher changes them;
- it runs as the bots' ServiceAccount with no API token mounted;
- every container runs one of the stack's bot images (this `up`'s and the last one's) with the image's own entrypoint:
  no command, arguments, working directory, hook or probe, no ConfigMap in its environment and no Secret but the bots'
  keys' (K8S_BOT_SECRET, this `up`'s and the last one's), whole, by `envFrom` (bot_secret.py), and no env but what the
  dispatcher writes (bot_env_allow.py, bot_trace_env.py) with no `$(NAME)` (EXPANDED); no init or ephemeral container;
- `restartPolicy: Never`, a deadline within the dispatcher's longest (this `up`'s or the last one's), the
  labels the dispatcher lists it by and no scheduling gate: none outlives its reaper;
- its only volumes are `pod_body`'s identity token and CA, and EKS's with a role (web_identity.py); its mounts,
  names, termination, scheduler, resources and grace (bot_pod_fields.py) and security context are `pod_body`'s;
- it names no node, affinity, host namespace or system priority class; its runtime class is `k8sRuntimeClass`.
  Without a runtime class, no node selector and no toleration but the two the API server's
  DefaultTolerationSeconds adds to every pod, with their seconds; a RuntimeClass's admission adds its own selector and
  tolerations to a pod, which the policy cannot read, so with one those two are not held.

Each check reads the pod as stored at validation time (docs/kubernetes.md, "What the dispatcher's pods may be").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.machines.k8s.pods import (
    APP,
    CHANNEL_CA_KEY,
    CHANNEL_CA_PATH,
    IDENTITY_TOKEN_SECONDS,
    IDENTITY_VOLUME,
    IDLE,
    LABEL_APP,
    LABEL_SESSION,
    LABEL_STATE,
    NOTE_CLAIMED,
)
from dispatcher.machines.k8s.provider import DEADLINE_SLACK_SECONDS
from dispatcher.reserve.policy import ReserveSettings
from stacks.k8s import bot_env_allow, bot_pod_fields, bot_pod_security
from stacks.k8s.bot_env_allow import allowed_env, pinned, session_names, told_pins
from stacks.k8s.bot_pod_fields import admitted_quantities, stop_grace
from stacks.k8s.bot_trace_env import admitted, described, told_traces, trace_env
from stacks.k8s.cel import empty, literal, off, quoted, writable
from stacks.k8s.pool_template import dispatcher_settings
from stacks.k8s.web_identity import (
    LONGEST_TOKEN_SECONDS,
    POD_IDENTITY_AUDIENCE,
    POD_IDENTITY_VOLUME,
    ROLE_ANNOTATION,
    WebIdentityVolume,
    pod_identity_refused,
    web_identity_volume,
)

# The tolerations the API server's DefaultTolerationSeconds admission adds to every pod (NoExecute, 300 s).
DEFAULT_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
# The highest value a cluster's own PriorityClass may take; the system classes (system-node-critical,
# system-cluster-critical) sit above it and preempt any other pod from a node.
HIGHEST_USER_PRIORITY = 1_000_000_000
CREATE = "variables.bot_create"
# A value the kubelet expands (kubernetes/kubernetes third_party/forked/golang/expansion): it reads `$` two by two
# from the left (`$$` is `$`), so a reference is a `$(` after an odd run of `$`, with a `)` after it. Classes,
# not `\$`: CEL's quotes here hold no backslash (stacks/k8s/cel.py).
EXPANDED = "(^|[^$])([$][$])*[$][(][^)]*[)]"


@dataclass(frozen=True)
class BotPod:
    """What the dispatcher's pods are: from its own settings (stacks/k8s/pool_template.py dispatcher_settings)."""

    images: tuple[str, ...]  # by digest
    audience: str  # the projected identity token's
    account: str  # the bots' ServiceAccount
    runtime_class: str | None
    lifetime: int  # the longest `activeDeadlineSeconds` its pods carry
    ca_configmap: str | None = None  # the channel's CA, projected beside the token (stacks/k8s/channel_tls.py)
    web_identity: WebIdentityVolume | None = None  # the volume a cloud's webhook adds (botPermissions' IRSA)
    namespace: str = ""  # the bots' (named in the way out of a refusal)
    secrets: tuple[str, ...] = ()  # the Secrets of the bots' keys a pod may take by `envFrom` (K8S_BOT_SECRET)
    # The `OTEL_*` variables the dispatcher tells its pods (the trace collector), each with the values a pod may carry
    traces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Every other name the dispatcher (or EKS's webhook) sets from the stack's settings, with the values a pod may carry
    pins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sessions: tuple[str, ...] = bot_env_allow.OPEN  # the names of a session's or an idle bot's own values
    # K8S_BOT_CPU and K8S_BOT_MEMORY (this `up`'s and the last one's), as written and as the API server stores them
    cpu: tuple[str, ...] = ("1",)
    memory: tuple[str, ...] = ("1Gi",)
    grace: int = 30  # the longest `terminationGracePeriodSeconds` its pods carry (K8S_STOP_GRACE_SECONDS)


def variables(pod: BotPod) -> list[dict[str, str]]:
    return [{"name": "bot_create", "expression": (
        "request.resource.resource == 'pods' && request.subResource == '' && request.operation == 'CREATE'")},
            {"name": bot_env_allow.PINNED_VARIABLE, "expression": bot_env_allow.pinned_table(pod.pins)}]


DEFAULT_TOLERATION_SECONDS = 300  # the API server's DefaultTolerationSeconds: what the dispatcher's pods get


def placement(pod: BotPod) -> str:
    spec = "object.spec"
    # The Priority admission sets a pod's class and value before validation (the cluster's globalDefault for a
    # pod that names none, as the dispatcher's do): a value of the cluster's own range is admitted.
    held = [empty(f"{spec}.nodeName"), f"!has({spec}.affinity)",
            *(off(f"{spec}.{flag}") for flag in ("hostNetwork", "hostPID", "hostIPC")),
            f"(!has({spec}.priority) || {spec}.priority <= {HIGHEST_USER_PRIORITY})"]
    if pod.runtime_class is None:
        held += [f"!has({spec}.runtimeClassName)", empty(f"{spec}.nodeSelector"),
                 f"(!has({spec}.tolerations) || {spec}.tolerations.all(t, has(t.key) && "
                 f"t.key in {quoted(DEFAULT_TOLERATIONS)} && has(t.effect) && t.effect == 'NoExecute' && "
                 # Without its seconds a toleration of an unreachable node keeps the pod bound to it for ever.
                 f"has(t.tolerationSeconds) && t.tolerationSeconds <= {DEFAULT_TOLERATION_SECONDS}))"]
    else:
        held.append(f"has({spec}.runtimeClassName) && {spec}.runtimeClassName == {literal(pod.runtime_class)}")
    return " && ".join(held)


def validations(pod: BotPod) -> list[dict[str, Any]]:
    """The checks of a bot pod's create, each with its own message (every other call passes them)."""
    spec = "object.spec"
    checks = [
        # First: EKS's webhook prefers a Pod Identity association to IRSA, and every later check would refuse
        # its pod with a message that does not say why.
        (f"!has({spec}.volumes) || !{spec}.volumes.exists(v, v.name == {literal(POD_IDENTITY_VOLUME)} || "
         "(has(v.projected) && v.projected.sources.exists(s, has(s.serviceAccountToken) && "
         "has(s.serviceAccountToken.audience) && "
         f"s.serviceAccountToken.audience == {literal(POD_IDENTITY_AUDIENCE)})))",
         pod_identity_refused(pod.namespace, pod.account)),
        (f"{spec}.serviceAccountName == {literal(pod.account)} && has({spec}.automountServiceAccountToken) && "
         f"{spec}.automountServiceAccountToken == false",
         f"a bot pod runs as the ServiceAccount {pod.account} with automountServiceAccountToken: false"),
        (f"{spec}.containers.all(c, c.image in {quoted(pod.images)} && {empty('c.command')} && {empty('c.args')}) "
         f"&& {empty(f'{spec}.initContainers')} && {empty(f'{spec}.ephemeralContainers')}",
         f"a bot pod runs the stack's bot image with its own entrypoint and no init container (k8sBotImage: "
         f"{', '.join(pod.images)})"),
        (f"{spec}.containers.all(c, !has(c.workingDir) && !has(c.lifecycle) && !has(c.livenessProbe) && "
         f"!has(c.readinessProbe) && !has(c.startupProbe) && {env_from(pod.secrets)} && (!has(c.env) || "
         "c.env.all(e, !has(e.valueFrom) || !(has(e.valueFrom.secretKeyRef) || has(e.valueFrom.configMapKeyRef)))))",
         "a bot pod's container runs no command but the image's entrypoint (no working directory, lifecycle hook "
         "or probe) and reads no ConfigMap into its environment, and no Secret but "
         + (f"the bots' keys' ({', '.join(pod.secrets)}, by envFrom)" if pod.secrets else "none (the stack has no "
            "botSecrets or k8sBotSecret)")),
        (f"{spec}.containers.all(c, (!has(c.env) || c.env.all(e, !has(e.value) || "
         f"!e.value.matches({literal(EXPANDED)}))))",
         "a bot pod's plain env values read no other variable: a `$(` is written `$$(` (the kubelet replaces "
         "$(NAME) with NAME's value, the bots' keys' among them, and $$ with $), as the dispatcher writes them"),
        (f"{spec}.containers.all(c, {trace_env(pod.traces)})", described(pod.traces)),
        (f"has({spec}.restartPolicy) && {spec}.restartPolicy == 'Never' && has({spec}.activeDeadlineSeconds) && "
         f"{spec}.activeDeadlineSeconds <= {pod.lifetime}",
         f"a bot pod runs once (restartPolicy: Never) and ends by its deadline (activeDeadlineSeconds at most "
         f"{pod.lifetime}, the longest the dispatcher gives)"),
        # The reaper counts a pod's age from its claim's mark when it has one: only a claim (an update) adds it.
        (f"has(object.metadata.labels) && {listed('object.metadata.labels')} && !has({spec}.schedulingGates) && "
         f"!(has(object.metadata.annotations) && {literal(NOTE_CLAIMED)} in object.metadata.annotations)",
         f"a bot pod carries the labels the dispatcher lists it by ({LABEL_APP}: {APP}, and {LABEL_SESSION} or "
         f"{LABEL_STATE}: {IDLE}), no scheduling gate, and no {NOTE_CLAIMED} before its claim"),
        (f"!has({spec}.volumes) || {spec}.volumes.all(v, (v.name == {literal(IDENTITY_VOLUME)} && "
         f"has(v.projected) && v.projected.sources.all(s, {identity_source(pod.audience)}"
         f"{ca_source(pod.ca_configmap)})){web_identity_source(pod.web_identity)})",
         f"a bot pod's only volumes are projected identity tokens for the channel's audience {pod.audience}"
         f" ({IDENTITY_VOLUME}: path token, at most {IDENTITY_TOKEN_SECONDS} s)"
         + (f" and the channel's CA (ConfigMap {pod.ca_configmap})" if pod.ca_configmap else "")
         + (f", and {pod.web_identity.described}" if pod.web_identity else "")),
        *bot_pod_fields.checks(pod.web_identity, pod.cpu, pod.memory, pod.grace),
        *bot_pod_security.checks(),
        (placement(pod),
         "a bot pod names no node, affinity, host namespace or system priority class, and no runtime class, node "
         "selector or toleration but k8sRuntimeClass's and the cluster's defaults"),
        # Last: its message lists what it admits, and a pod another check refuses says why in that one's words.
        (f"{spec}.containers.all(c, {allowed_env(pod.sessions, pod.web_identity is not None)})",
         bot_env_allow.described(pod.sessions, pod.pins)),
    ]
    return [{"expression": f"!{CREATE} || ({expression})", "message": message} for expression, message in checks]


def env_from(secrets: tuple[str, ...]) -> str:
    """CEL on a container `c`: no `envFrom`, or only the bots' keys' Secrets, whole (no prefix, no ConfigMap)."""
    if not secrets:
        return "!has(c.envFrom)"
    return (f"(!has(c.envFrom) || c.envFrom.all(f, has(f.secretRef) && !has(f.configMapRef) && !has(f.prefix) && "
            f"f.secretRef.name in {quoted(secrets)}))")


def identity_source(audience: str) -> str:
    """CEL: a projected source `s` that is the bot's identity token as `pod_body` writes it."""
    token = "s.serviceAccountToken"  # noqa: S105 - a field's name
    return (f"(has({token}) && has({token}.audience) && {token}.audience == {literal(audience)} && has({token}.path) "
            f"&& {token}.path == 'token' && has({token}.expirationSeconds) && "
            f"{token}.expirationSeconds <= {IDENTITY_TOKEN_SECONDS})")


def ca_source(configmap: str | None) -> str:
    """CEL: ` || ` a projected source that is the channel's CA ConfigMap alone, its one key at its one path, or
    nothing without one."""
    if configmap is None:
        return ""
    return (f" || (has(s.configMap) && !has(s.serviceAccountToken) && s.configMap.name == {literal(configmap)} && "
            f"has(s.configMap.items) && s.configMap.items.all(i, i.key == {literal(CHANNEL_CA_KEY)} && "
            f"i.path == {literal(CHANNEL_CA_PATH)} && !has(i.mode)))")


def web_identity_source(volume: WebIdentityVolume | None) -> str:
    """CEL: ` || ` the cloud webhook's volume, by its name, one token of its audience alone; nothing without one."""
    if volume is None:
        return ""
    return (f" || (v.name == {literal(volume.name)} && has(v.projected) && size(v.projected.sources) == 1 && "
            "v.projected.sources.all(s, has(s.serviceAccountToken) && has(s.serviceAccountToken.audience) && "
            f"s.serviceAccountToken.audience == {literal(volume.audience)} && has(s.serviceAccountToken.path) && "
            f"s.serviceAccountToken.path == {literal(volume.path)} && has(s.serviceAccountToken.expirationSeconds) && "
            f"s.serviceAccountToken.expirationSeconds <= {LONGEST_TOKEN_SECONDS}))")


def listed(labels: str) -> str:
    """CEL: the labels a session's pod or an idle bot's carries, which the dispatcher lists them by
    (dispatcher/machines/k8s/provider.py, reserve.py)."""
    return (f"{literal(LABEL_APP)} in {labels} && {labels}[{literal(LABEL_APP)}] == {literal(APP)} && "
            f"({literal(LABEL_SESSION)} in {labels} || ({literal(LABEL_STATE)} in {labels} && "
            f"{labels}[{literal(LABEL_STATE)}] == {literal(IDLE)}))")


def launchable_images(current: str, last: str | None) -> tuple[str, ...]:
    """This `up`'s bot image and the last one's (a replica not yet rolled still launches it)."""
    return tuple(dict.fromkeys(image for image in (current, last) if image))


def pod_lifetime(environment: Mapping[str, str]) -> int:
    """The longest `activeDeadlineSeconds` the dispatcher gives a pod, from the environment the stack gives it:
    a session's cap and DEADLINE_SLACK_SECONDS (dispatcher/machines/k8s/provider.py), or an idle bot's
    wait and its session (dispatcher/machines/k8s/reserve.py)."""
    session = int(environment["MAX_SESSION_SECONDS"])
    idle = math.ceil(ReserveSettings.from_env(environment, "k8s").max_idle_seconds)
    return session + max(DEADLINE_SLACK_SECONDS, idle)


def bot_pod(environment: Mapping[str, str], allowed: Sequence[str], last_lifetime: int | None = None,
            account_annotations: Mapping[str, str] | None = None, last_role: str | None = None,
            earlier_secrets: Sequence[str] = (), last_traces: Mapping[str, str] | None = None,
            last_pins: Mapping[str, str] | None = None, last_resources: Mapping[str, str] | None = None) -> BotPod:
    """The dispatcher's pods, from the environment the stack gives it (read as the dispatcher reads it); a
    replica the last `up` made, not yet rolled, still gives its own pods' lifetime; the bots' ServiceAccount's
    annotations (botPermissions) say what a cloud's webhook adds to them, and so does the last `up`'s role
    while the account still carries it (Access updates the account after this policy); a replica not yet rolled
    still names an earlier `up`'s Secret of the bots' keys (`earlier_secrets`: the last `up`'s, and those the stack
    keeps while their replicas drain, stacks/k8s/bot_secret_generations.py), its trace collector the last
    `up`'s (`last_traces`, stacks/k8s/bot_trace_env.py), its other told values (`last_pins`, bot_env_allow.py) and
    its pods' cpu, memory and stop grace (`last_resources`)."""
    account_annotations = account_annotations or {}
    roles = tuple(dict.fromkeys(role for role in (account_annotations.get(ROLE_ANNOTATION), last_role)
                                if role and writable(role)))
    if last_role is not None and ROLE_ANNOTATION not in account_annotations:
        account_annotations = {**account_annotations, ROLE_ANNOTATION: last_role}
    settings = dispatcher_settings(environment)
    last_resources = last_resources or {}
    assert settings.service_account is not None  # the stack sets K8S_SERVICE_ACCOUNT
    return BotPod(images=tuple(allowed), audience=settings.token_audience, account=settings.service_account,
                  runtime_class=settings.runtime_class, ca_configmap=settings.channel_ca_configmap,
                  namespace=settings.namespace,
                  lifetime=max(pod_lifetime(environment), last_lifetime or 0),
                  secrets=tuple(dict.fromkeys(name for name in (settings.bot_secret, *earlier_secrets) if name)),
                  web_identity=web_identity_volume(account_annotations),
                  traces=admitted(told_traces(environment), last_traces or {}),
                  sessions=session_names(environment),
                  cpu=admitted_quantities(settings.cpu, last_resources.get("cpu")),
                  memory=admitted_quantities(settings.memory, last_resources.get("memory")),
                  grace=stop_grace(environment, last_resources),
                  pins=pinned(told_pins(environment), last_pins or {}, roles, web_identity_volume(account_annotations)))

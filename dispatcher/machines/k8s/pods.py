"""A bot's Pod: its body as the provider creates it, its labels, and its state read back.

A bare Pod, not a Deployment: a ReplicaSet adopts any ownerless pod whose labels match its selector,
and a session's pod must never be replaced. `restartPolicy: Never` (a session runs once),
`activeDeadlineSeconds` (the kubelet fails the pod past it: the hard cap), Pod Security `restricted`
(non-root, every capability dropped, RuntimeDefault seccomp, no privilege escalation), no
ServiceAccount token of the API server's audience mounted, only one projected token of voicefleet's
audience at IDENTITY_TOKEN_PATH (docs/kubernetes.md, "Identity"), and beside it, with
K8S_BOT_CHANNEL_CA_CONFIGMAP, the CA a wss:// channel is checked against (BOT_CHANNEL_CA_FILE). With
K8S_BOT_SECRET, the bots' keys by reference (`envFrom`), never a value in the pod's spec. Every plain env
value is written with its `$` doubled (`unexpanded`): the kubelet reads `$(NAME)` in one as another
variable's value (the Secret's keys among them) and `$$` as `$`, so the bot gets the text as it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botchannel.contract import CA_FILE_VARIABLE
from dispatcher.machines.base import Machine, MachineState
from dispatcher.machines.k8s.settings import K8sSettings

LABEL_APP, APP = "voicefleet.io/app", "bot"
LABEL_STATE, IDLE, SESSION = "voicefleet.io/state", "idle", "session"
LABEL_SESSION, LABEL_BOT, LABEL_RELEASE = "voicefleet.io/session", "voicefleet.io/bot", "voicefleet.io/release"
# On a release's SandboxWarmPool the stack keeps after dropping the release from RELEASES (its sessions may
# still run): the dispatcher that no longer lists the release empties it (dispatcher/reserve/pool_sizing.py).
LABEL_RETIRING = "voicefleet.io/retiring"
NOTE_DIGEST, NOTE_TRANSPORT = "voicefleet.io/body-digest", "voicefleet.io/transport"
# An idle pod's K8S_BOT_SECRET, as created ("" for none): a pod of other keys is stale (k8s/reserve.py).
NOTE_BOT_SECRET = "voicefleet.io/bot-secret"  # noqa: S105 - an annotation's key, not a secret
NOTE_CLAIMED = "voicefleet.io/claimed-at"  # a claimed idle pod: its session's start, for the reaper
# One launch call's own id: its create, retried after a lost answer, meets 409 and knows the pod is its own.
NOTE_LAUNCH = "voicefleet.io/launch"
NAME_PREFIX, IDLE_PREFIX = "vf-", "vf-idle-"
CONTAINER = "bot"
IDENTITY_VOLUME, IDENTITY_DIR = "voicefleet-identity", "/var/run/secrets/voicefleet"
IDENTITY_TOKEN_PATH = f"{IDENTITY_DIR}/token"
IDENTITY_TOKEN_SECONDS = 3600  # the kubelet refreshes a projected token at 80 % of this
# K8S_BOT_CHANNEL_CA_CONFIGMAP's key, projected beside the token: the CA a wss:// channel is checked against.
CHANNEL_CA_KEY, CHANNEL_CA_PATH = "ca.crt", "channel-ca.crt"
CHANNEL_CA_FILE = f"{IDENTITY_DIR}/{CHANNEL_CA_PATH}"


def session_pod_name(session_id: str) -> str:
    return NAME_PREFIX + session_id


def idle_pod_name(bot_id: str) -> str:
    return IDLE_PREFIX + bot_id


def unexpanded(value: str) -> str:
    """`value` as a container's plain env value that the kubelet gives the container unchanged: it replaces
    `$(NAME)` with NAME's value and `$$` with `$` (kubernetes/kubernetes third_party/forked/golang/expansion),
    so with every `$` doubled a session's `$(…)` stays text and reads none of the bots' keys."""
    return value.replace("$", "$$")


def pod_body(settings: K8sSettings, name: str, *, image: str, env: Mapping[str, str], labels: Mapping[str, str],
             annotations: Mapping[str, str], deadline_seconds: int | None) -> dict[str, Any]:
    """A bot's pod; `deadline_seconds` None: no `activeDeadlineSeconds` (an agent-sandbox template's pod,
    whose session's hard end is its claim's `shutdownTime`)."""
    sources: list[dict[str, Any]] = [{"serviceAccountToken": {
        "audience": settings.token_audience, "expirationSeconds": IDENTITY_TOKEN_SECONDS, "path": "token"}}]
    if settings.channel_ca_configmap:  # public: the CA that signed the dispatcher's channel certificate
        sources.append({"configMap": {"name": settings.channel_ca_configmap,
                                      "items": [{"key": CHANNEL_CA_KEY, "path": CHANNEL_CA_PATH}]}})
        env = {**env, CA_FILE_VARIABLE: CHANNEL_CA_FILE}
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                  "seccompProfile": {"type": "RuntimeDefault"}}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        **({"activeDeadlineSeconds": deadline_seconds} if deadline_seconds is not None else {}),
        "terminationGracePeriodSeconds": settings.stop_grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no other Service's address in the bot's environment
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": CONTAINER,
            "image": image,
            "env": [{"name": k, "value": unexpanded(v)} for k, v in env.items()],
            # The bots' keys, read by the kubelet when the container starts. A name in `env` wins over the
            # same name here (the kubelet applies `envFrom` first), so no key can replace a launch value.
            **({"envFrom": [{"secretRef": {"name": settings.bot_secret}}]} if settings.bot_secret else {}),
            "resources": {"requests": {"cpu": settings.cpu, "memory": settings.memory},
                          "limits": {"cpu": settings.cpu, "memory": settings.memory}},
            "securityContext": restricted,
            "volumeMounts": [{"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": True}],
        }],
        "volumes": [{"name": IDENTITY_VOLUME, "projected": {"sources": sources}}],
    }
    if settings.runtime_class:
        spec["runtimeClassName"] = settings.runtime_class
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {LABEL_APP: APP, **labels}, "annotations": dict(annotations)},
            "spec": spec}


def made_by(obj: Mapping[str, Any], launch_id: str) -> bool:
    """Whether the object (a pod, a claim) was created by the launch call `launch_id` (NOTE_LAUNCH)."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(NOTE_LAUNCH) == launch_id


def epoch_of(stamp: object) -> float:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return (status.get("state") or {}).get("terminated")
    return None


def _unstartable(pod: Mapping[str, Any]) -> str | None:
    """Why the kubelet cannot start the bot's container (its Secret of keys missing, a root image under
    `runAsNonRoot`): it retries, but nothing in the pod will change, so a session should not wait it out."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if status.get("name") == CONTAINER and waiting.get("reason") == "CreateContainerConfigError":
            return f"CreateContainerConfigError: {str(waiting.get('message') or '').strip()[:200]}"
    return None


def pod_state(pod: Mapping[str, Any]) -> tuple[MachineState, str | None]:
    """The pod's phase as the contract's state: Pending → starting (failed when the kubelet cannot make its
    container), Running → started, Succeeded → ended, Failed → failed (why the kubelet failed it, its
    deadline or an eviction, else the bot's exit code); a pod being deleted has ended unless its bot exited
    with an error."""
    status = pod.get("status") or {}
    phase = str(status.get("phase", "Pending"))
    if phase == "Pending" and (unstartable := _unstartable(pod)):
        return MachineState.FAILED, unstartable
    terminated = _terminated(pod)
    code = terminated.get("exitCode") if terminated else None
    # The kubelet's own reason first: an evicted or overdue pod's bot was killed (exit code 137), which
    # says nothing of why.
    if phase == "Failed" and (reason := status.get("reason")):
        message = str(status.get("message") or "").strip()
        return MachineState.FAILED, f"{reason}: {message[:200]}" if message else str(reason)
    if code:
        return MachineState.FAILED, f"exit code {code}"
    if phase == "Failed":
        return MachineState.FAILED, "pod failed"
    if phase == "Succeeded" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return MachineState.ENDED, None
    if phase == "Running":
        return MachineState.STARTED, None
    if phase == "Pending":
        return MachineState.STARTING, None
    return MachineState.STARTING, f"unknown pod phase {phase}"  # `Unknown`: the node is not answering


def charged(pod: Mapping[str, Any], now: float) -> bool:
    """Whether the namespace's ResourceQuota charges the pod: one not Succeeded or Failed, a pod being deleted
    too until its grace period has passed its deletion time (the quota's own rule, `QuotaV1Pod` in
    kubernetes/kubernetes pkg/quota/v1/evaluator/core/pods.go), though it is listed as ended."""
    if str((pod.get("status") or {}).get("phase", "Pending")) in ("Succeeded", "Failed"):
        return False
    metadata = pod.get("metadata") or {}
    deleted, grace = metadata.get("deletionTimestamp"), metadata.get("deletionGracePeriodSeconds")
    return not (deleted and isinstance(grace, int) and now > epoch_of(deleted) + grace)


def to_machine(pod: Mapping[str, Any]) -> Machine:
    metadata = pod.get("metadata") or {}
    labels, notes = metadata.get("labels") or {}, metadata.get("annotations") or {}
    state, detail = pod_state(pod)
    claimed = notes.get(NOTE_CLAIMED)
    return Machine(
        session_id=str(labels.get(LABEL_SESSION, "")),
        machine_id=str(metadata.get("name", "")),
        state=state,
        created_at=float(claimed) if claimed else epoch_of(metadata.get("creationTimestamp")),
        body_digest=notes.get(NOTE_DIGEST),
        detail=detail,
        transport=notes.get(NOTE_TRANSPORT),
        release=labels.get(LABEL_RELEASE),
    )

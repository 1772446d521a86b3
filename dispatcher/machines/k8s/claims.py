"""An `agent-sandbox` session's SandboxClaim: its body as the provider creates it, and its state read back.

Fields as the CRD's `v1beta1` schema has them (kubernetes-sigs/agent-sandbox
`k8s/crds/extensions.agents.x-k8s.io_sandboxclaims.yaml`). The claim checks out a Sandbox from the
deployment's SandboxWarmPool (`spec.warmPoolRef`, required since v1beta1). Its lifecycle ends the Sandbox
with the session: `ttlSecondsAfterFinished: 0` expires the claim as soon as the pod is terminal (the
bot exited), `shutdownTime` is the hard cap, and `DeleteForeground` deletes the claim and, by owner
reference, its Sandbox and pod (the default, `Retain`, would keep the claim, marked `ClaimExpired`:
a leak per session). `additionalPodMetadata` is propagated to the claim's pod: one annotation, the
session's id, for whoever reads the pod (an operator, a log collector). Nothing else: whoever may `get`
claims or pods reads it, so no launch value and no credential goes there (the bot takes its session over
the channel, k8s/sandbox.py). The controller refuses a claim
carrying any pod label whose domain is not in its allowlist (default `sandbox.users.io`;
`validateAdditionalPodMetadata`, Ready=False `InvalidMetadata`); annotations pass unless of a
Kubernetes system domain. The pod's `voicefleet.io/app` label is the pool's SandboxTemplate's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.machines.base import Machine, MachineState
from dispatcher.machines.k8s.pods import (
    APP,
    LABEL_APP,
    LABEL_RELEASE,
    LABEL_SESSION,
    NOTE_DIGEST,
    NOTE_TRANSPORT,
    epoch_of,
    session_pod_name,
)

GROUP_VERSION = "extensions.agents.x-k8s.io/v1beta1"
NOTE_SESSION = "voicefleet.io/session"  # the session's id, on its pod (an annotation: labels are refused)
# Ready=False reasons that no later pass of the controller changes (sandboxclaim_controller.go,
# computeReadyCondition): the claim itself is refused.
REFUSED = frozenset({"TemplateNotFound", "WarmPoolNotFound", "InvalidMetadata", "EnvVarsInjectionRejected",
                     "VolumeClaimTemplatesError"})


def claim_name(session_id: str) -> str:
    return session_pod_name(session_id)  # `vf-<session id>`, as a pods-mode pod: one name per session


def claim_body(name: str, *, pool: str, session_id: str, release: str, notes: Mapping[str, str],
               shutdown_after_seconds: int) -> dict[str, Any]:
    shutdown = datetime.now(UTC) + timedelta(seconds=shutdown_after_seconds)
    labels = {LABEL_APP: APP, LABEL_SESSION: session_id, LABEL_RELEASE: release}  # the claim's own: the reaper's list
    return {
        "apiVersion": GROUP_VERSION, "kind": "SandboxClaim",
        "metadata": {"name": name, "labels": labels, "annotations": dict(notes)},
        "spec": {
            "warmPoolRef": {"name": pool},
            "additionalPodMetadata": {"annotations": {NOTE_SESSION: session_id}},
            "lifecycle": {"shutdownTime": shutdown.strftime("%Y-%m-%dT%H:%M:%SZ"), "ttlSecondsAfterFinished": 0,
                          "shutdownPolicy": "DeleteForeground"},
        },
    }


def condition(claim: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for each in (claim.get("status") or {}).get("conditions") or []:
        if isinstance(each, dict) and each.get("type") == kind:
            return each
    return {}


def bound_sandbox(claim: Mapping[str, Any]) -> str | None:
    """The Sandbox (and so the pod: new Sandboxes name their pod after themselves) the claim holds."""
    return ((claim.get("status") or {}).get("sandbox") or {}).get("name") or None


def claim_state(claim: Mapping[str, Any]) -> tuple[MachineState, str | None]:
    """Being deleted or Finished with PodSucceeded → ended; Finished otherwise, or refused → failed;
    Ready and bound → started; anything else → starting (the controller's next pass may bind it)."""
    finished, ready = condition(claim, "Finished"), condition(claim, "Ready")
    if finished.get("status") == "True":
        if finished.get("reason") == "PodSucceeded":
            return MachineState.ENDED, None
        return MachineState.FAILED, f"{finished.get('reason', 'Finished')}: {str(finished.get('message', ''))[:200]}"
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        return MachineState.ENDED, None
    reason = str(ready.get("reason", ""))
    if ready.get("status") == "False" and reason in REFUSED:
        return MachineState.FAILED, f"{reason}: {str(ready.get('message', ''))[:200]}"
    if ready.get("status") == "False" and reason in ("ClaimExpired", "SandboxExpired"):
        return MachineState.ENDED, reason
    if ready.get("status") == "True" and bound_sandbox(claim):
        return MachineState.STARTED, None
    return MachineState.STARTING, reason or None


def claim_machine(claim: Mapping[str, Any]) -> Machine:
    metadata = claim.get("metadata") or {}
    labels, notes = metadata.get("labels") or {}, metadata.get("annotations") or {}
    state, detail = claim_state(claim)
    return Machine(session_id=str(labels.get(LABEL_SESSION, "")),
                   machine_id=bound_sandbox(claim) or str(metadata.get("name", "")), state=state,
                   created_at=epoch_of(metadata.get("creationTimestamp")), body_digest=notes.get(NOTE_DIGEST),
                   detail=detail, transport=notes.get(NOTE_TRANSPORT), release=labels.get(LABEL_RELEASE))

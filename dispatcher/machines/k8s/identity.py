"""A `pods` mode bot's hello is admitted only while the API server shows the pod launched for its credential.

The pod named for the grant (`vf-<session id>`, or `vf-idle-<bot id>`) must exist, must not have
ended, and must carry the grant's session or bot id in its labels; pod names are unique in the
namespace while the pod exists, and a session id is never reused. This binds a credential to its
pod, as ACI's check binds one to its container group; it does not prove the hello comes *from* that
pod: whoever may read pods in the namespace reads the credential in the pod's env. Each pod also
carries a projected ServiceAccount token of voicefleet's audience (k8s/pods.py); checking it with a
TokenReview, whose answer names the pod, is the next step (docs/kubernetes.md, "Identity").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.pods import LABEL_BOT, LABEL_SESSION, idle_pod_name, session_pod_name, to_machine


class PodIdentity:
    def __init__(self, read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._read_pod = read_pod

    @staticmethod
    def pod_for(grant: BotGrant) -> str:
        return idle_pod_name(grant.subject) if grant.kind == "idle" else session_pod_name(grant.subject)

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        name = self.pod_for(grant)
        try:
            pod = await self._read_pod(name)
        except MachinesError as exc:
            return f"the API server did not answer for pod {name} ({exc.reason})"
        if pod is None:
            return f"no pod {name}: the credential's pod is gone or was never launched"
        labels = (pod.get("metadata") or {}).get("labels") or {}
        label = LABEL_BOT if grant.kind == "idle" else LABEL_SESSION
        if labels.get(label) != grant.subject:
            return f"pod {name} is not labelled {label}={grant.subject}"
        if not to_machine(pod).state.is_active:
            return f"pod {name} has ended"
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None  # nothing the bot presents yet: the check is the API server's word on the pod

    async def aclose(self) -> None:
        """Nothing of its own to close: its reads go through the provider's client."""

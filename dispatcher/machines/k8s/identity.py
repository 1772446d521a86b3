"""A bot's hello is admitted only with its pod's own identity token, for the credential's pod.

Each pod carries a projected ServiceAccount token of voicefleet's audience (k8s/pods.py), which only
its containers can read: the bot sends it in its hello (`BOT_IDENTITY=k8s`, bot/identity.py), and the
dispatcher asks the API server for a TokenReview (authentication.k8s.io/v1, the audience voicefleet's).
The review must authenticate it, for that audience, as the bots' ServiceAccount (K8S_SERVICE_ACCOUNT
in K8S_NAMESPACE, exactly: another workload of the namespace is not a bot), and name the
pod (`authentication.kubernetes.io/pod-name`) launched for the credential (`vf-<session id>`, or
`vf-idle-<bot id>`); that pod must exist with the same uid, not have ended, and carry the credential's
session or bot id in its labels. A bound token stops being valid once its pod is deleted, so a pod's
token admits nothing after it. The kubelet hands the same token to every read until it refreshes it, so
a bot's re-dials send it again: no one-use record (as for a Modal Sandbox's token). The
`agent-sandbox` mode issues no credential: its pods' hellos carry the token alone (k8s/pool_bots.py),
reviewed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import ProofSeen
from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.pods import LABEL_BOT, LABEL_SESSION, idle_pod_name, session_pod_name, to_machine
from dispatcher.outbound.http_client import HttpResponse

POD_NAME, POD_UID = "authentication.kubernetes.io/pod-name", "authentication.kubernetes.io/pod-uid"


class PodIdentity:
    def __init__(self, read_pod: Callable[[str], Awaitable[dict[str, Any] | None]],
                 review: Callable[[str], Awaitable[HttpResponse]], *, namespace: str, audience: str,
                 account: str) -> None:
        self._read_pod, self._review = read_pod, review
        self._namespace, self._audience = namespace, audience
        self.username = f"system:serviceaccount:{namespace}:{account}"  # the bots' ServiceAccount, exactly

    @staticmethod
    def pod_for(grant: BotGrant) -> str:
        return idle_pod_name(grant.subject) if grant.kind == "idle" else session_pod_name(grant.subject)

    async def live_pod(self, hello: Hello, read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]
                       ) -> tuple[dict[str, Any], str] | str:
        """The pod a hello's identity token proves, with its uid: the one the hello names, read now, the
        token's own (not an earlier pod of its name) and running; else why not."""
        user = await self.reviewed(hello.identity or "")
        if isinstance(user, str):
            return user
        extra = user.get("extra") or {}
        names, uids = extra.get(POD_NAME) or [], extra.get(POD_UID) or []
        if len(names) != 1 or len(uids) != 1:
            return "the identity token names no pod (a bound ServiceAccount token from a pod's projected volume)"
        name = str(names[0])
        if hello.machine_id != name:
            return f"the identity token is pod {name}'s, not {hello.machine_id}'s"
        try:
            pod = await read_pod(name)
        except MachinesError as exc:
            return f"the API server did not answer for pod {name} ({exc.reason})"
        if pod is None:
            return f"no pod {name}"
        if (pod.get("metadata") or {}).get("uid") != uids[0]:
            return f"the identity token is of an earlier pod named {name}"
        if not to_machine(pod).state.is_active:
            return f"pod {name} has ended"
        return pod, str(uids[0])

    async def reviewed(self, token: str) -> dict[str, Any] | str:
        """The review's `status.user`, or why the token is refused."""
        try:
            response = await self._review(token)
        except MachinesError as exc:
            return f"the API server did not review the identity token ({exc.reason})"
        if response.status_code != 201 and response.status_code != 200:
            return f"the API server refused the TokenReview (HTTP {response.status_code}: the dispatcher needs " \
                   "system:auth-delegator)"
        status = (response.json() or {}).get("status") or {}
        if not status.get("authenticated"):
            return f"the identity token is not authenticated: {str(status.get('error', ''))[:200]}"
        if self._audience not in (status.get("audiences") or []):
            return f"the identity token is not for {self._audience}"
        user = status.get("user") or {}
        if user.get("username") != self.username:
            return f"the identity token is not the bots' ServiceAccount's ({self.username}, K8S_SERVICE_ACCOUNT)"
        return dict(user)

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if not hello.identity:
            return "the hello carries no identity token (the pod's projected token: BOT_IDENTITY=k8s)"
        user = await self.reviewed(hello.identity)
        if isinstance(user, str):
            return user
        try:
            name = self.pod_for(grant)
            pod = await self._read_pod(name)
        except MachinesError as exc:
            return f"the API server did not answer for the credential's pod ({exc.reason})"
        extra = user.get("extra") or {}
        if extra.get(POD_NAME) != [name]:
            return f"the identity token names pod {extra.get(POD_NAME)}, not the credential's {name}"
        if pod is None:
            return f"no pod {name}: the credential's pod is gone or was never launched"
        metadata = pod.get("metadata") or {}
        if extra.get(POD_UID) != [metadata.get("uid")]:
            return f"the identity token is of an earlier pod named {name}"
        held = (metadata.get("labels") or {}).get(LABEL_BOT if grant.kind == "idle" else LABEL_SESSION)
        if held != grant.subject:
            return f"pod {name} is not {grant.kind} {grant.subject}'s"
        if not to_machine(pod).state.is_active:
            return f"pod {name} has ended"
        return None

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None  # the pod's token is the same for every dial until the kubelet refreshes it

    async def aclose(self) -> None:
        """Nothing of its own to close: its calls go through the provider's client."""

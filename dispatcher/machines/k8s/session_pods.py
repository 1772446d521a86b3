"""The `pods` mode's session pods: admitted on their pod's identity alone, so no credential is in the pod.

A session's pod carries its session's id and nothing secret (no channel credential, no session value:
docs/kubernetes.md, "What the cluster's objects hold"); its bot dials with its pod's projected token
(BOT_IDENTITY=k8s), naming its session in its hello. The hello is admitted as that session's bot only when
the TokenReview authenticates the bots' ServiceAccount for voicefleet's audience (k8s/identity.py), the
token names this pod and this pod's uid, the hello's machine is that pod, the pod is active, labelled as
voicefleet's bot of that session, and named for it (`vf-<session id>`: names are unique in a namespace,
so while the session's pod exists no other pod can be it). Its values then reach it over the channel
(`assign`), as a cold bot's do with a credential. Idle reserve pods keep their own credential
(k8s/reserve.py): it names a bot, not a session, and admits nothing without the pod's token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.k8s.identity import PodIdentity
from dispatcher.machines.k8s.pods import (
    APP,
    LABEL_APP,
    LABEL_SESSION,
    LABEL_STATE,
    SESSION,
    session_pod_name,
)

GRANT_SECONDS = 2 * 86_400  # how long the admission's records hold; a re-dial is checked again


class SessionPodIdentity:
    """The identity-only hello's grant in the `pods` mode: a session pod's, for its own session only."""

    def __init__(self, identity: PodIdentity, read_pod: Callable[[str], Awaitable[dict[str, Any] | None]],
                 clock: Callable[[], float]) -> None:
        self._identity, self._read_pod, self._clock = identity, read_pod, clock

    async def grant(self, hello: Hello) -> BotGrant | str:
        if not hello.identity:
            return "a hello without a credential must carry its pod's identity token (BOT_IDENTITY=k8s)"
        found = await self._identity.live_pod(hello, self._read_pod)
        if isinstance(found, str):
            return found
        pod, uid = found
        name = str(hello.machine_id)
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        session_id = str(labels.get(LABEL_SESSION) or "")
        if labels.get(LABEL_APP) != APP or labels.get(LABEL_STATE) != SESSION or not session_id \
                or name != session_pod_name(session_id):
            return f"pod {name} is no session's pod (an idle bot dials with its own credential)"
        if hello.session_id not in (None, session_id):
            return f"pod {name} is session {session_id}'s"
        return BotGrant("session", session_id, int(self._clock() + GRANT_SECONDS), machine_uid=uid)

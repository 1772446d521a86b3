"""The agent-sandbox pool's bot pod: the pod the `pods` mode creates, as a SandboxTemplate's `podTemplate`.

Built by the dispatcher's own `pod_body` (dispatcher/machines/k8s/pods.py) from the dispatcher's own
settings, read from the environment the stack gives it (`K8sSettings.from_env`), so the two cannot drift:
Pod Security `restricted`, no API token mounted, the projected token of the dispatcher's audience
(BOT_IDENTITY_AUDIENCE, else BOT_CHANNEL_URL), K8S_BOT_CPU and K8S_BOT_MEMORY, the runtime class, the
bots' ServiceAccount, `restartPolicy: Never`. What a pool bot needs beyond it (docs/kubernetes.md, "The
warm path"): the channel's URL as a literal value (dispatcher/machines/k8s/pool_pod.py refuses any other),
`BOT_IDENTITY=k8s` and no credential, and the one web transport the dispatcher offers in this mode
(`K8sSettings.pool_transport`); nothing of a session's (a bot, warm or cold, takes its session over
the channel once its pod's identity is checked). The label
`voicefleet.io/app: bot` is the template's: the claim may set no pod label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import ENV_MAX_IDLE, ENV_TRANSPORT
from botchannel.contract import CHANNEL_URL_VARIABLE, IDENTITY_VARIABLE, IMAGE_VARIABLE
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.settings import K8sSettings

# A pool bot waits until a claim adopts it; its own idle cap (an hour for a reserve bot, which the
# dispatcher retires sooner) would empty every warm slot hourly, and a dead Sandbox may be adopted as the
# claim controller's fallback (`getCandidate`). A week: the pool's `Recreate` replaces it on every change.
POOL_BOT_MAX_IDLE_SECONDS = 7 * 86_400
# Where the kubelet points a dispatcher pod at the API server (it sets KUBERNETES_SERVICE_HOST in every
# container): the settings need an address, the pod's body never reads it.
IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc", "KUBERNETES_SERVICE_PORT": "443"}


def dispatcher_settings(environment: Mapping[str, str]) -> K8sSettings:
    """The dispatcher's `MACHINES=k8s` settings, as its pods read them from the stack's environment."""
    return K8sSettings.from_env({**IN_CLUSTER, **environment})


def pool_pod(environment: Mapping[str, str]) -> dict[str, Any]:
    """The SandboxTemplate's `podTemplate` (metadata and spec) for the dispatcher whose env is `environment`."""
    settings = dispatcher_settings(environment)
    channel = environment[CHANNEL_URL_VARIABLE]
    env = {CHANNEL_URL_VARIABLE: channel, IMAGE_VARIABLE: settings.image, IDENTITY_VARIABLE: "k8s",
           ENV_TRANSPORT: settings.pool_transport, ENV_MAX_IDLE: str(POOL_BOT_MAX_IDLE_SECONDS),
           # as the dispatcher tells the pods it makes: the shared model service, when the stack runs one, the
           # account's Twilio region, JSON logs and the trace collector (stacks/config/bot_plain_env.py)
           **settings.told_bots}
    # No deadline: it counts from the pod's start, and a warm pod waits in the pool until it is claimed
    # (its bot's own cap above, not RESERVE_MAX_IDLE_SECONDS), so it would cut short the session of a pod
    # claimed late. The claim's shutdownTime (the session cap plus a minute) is the session's hard end.
    body = pod_body(settings, "template", image=settings.image, env=env, labels={}, annotations={},
                    deadline_seconds=None)
    return {"metadata": {"labels": body["metadata"]["labels"]}, "spec": body["spec"]}

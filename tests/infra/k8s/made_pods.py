"""The pods a `pods`-mode dispatcher creates, made by its own provider (dispatcher/machines/k8s/provider.py's
session launch, reserve.py's idle bot) from the settings it reads, and taken from its create call to the API
server: every name its `launch_env` writes, as `pod_body` writes it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import K8sWarmMachines
from stacks.k8s.pool_template import dispatcher_settings


@dataclass
class Created:
    """The API server's answer to a create: the pod, as stored."""

    body: dict[str, Any]
    status_code: int = 201

    def json(self) -> dict[str, Any]:
        return {**self.body, "metadata": {**self.body["metadata"], "resourceVersion": "1"}}


class Recorder:
    """Stands in for the provider's KubeApi.request: keeps each body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def request(self, method: str, path: str = "", **kw: Any) -> Created:
        assert method == "POST", (method, path)
        self.bodies.append(kw["json"])
        return Created(kw["json"])


def made_pods(environment: Mapping[str, str], image: str, spec: LaunchSpec, *,
              idle_seconds: float) -> list[dict[str, Any]]:
    """A session's pod (with a bot channel when the stack gives the dispatcher one, as `watch_channels` finds
    it) and an idle bot's, as this dispatcher creates them."""
    # No CA file to read: the API client is never called here (Recorder), and the pod's body never names it.
    settings = replace(dispatcher_settings(environment), ca_file=None)
    channel = environment.get(CHANNEL_URL_VARIABLE) or None
    cold = K8sMachines(settings, channel_url=channel)
    warm = K8sWarmMachines(settings, channel_url=channel, transport=settings.pool_transport,
                           max_idle_seconds=idle_seconds, max_session_seconds=spec.max_session_seconds)
    recorder = Recorder()
    for machines in (cold, warm):
        if channel:  # the dispatcher's channel has its credentials (dispatcher/channel/bots.py)
            machines.watch_channels(SimpleNamespace(credentials=object()))  # type: ignore[arg-type]
        machines.api.request = recorder.request  # type: ignore[method-assign,assignment]

    async def make() -> None:
        await cold.create_session(spec)
        await warm.launch_idle("b1", image=image)

    asyncio.run(make())
    return recorder.bodies

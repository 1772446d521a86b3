"""A pool bot's pod is pinned beyond its image: no ephemeral container, the image's own entrypoint, this
dispatcher's channel; the pool's own pod passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.pool_pod import pool_pod_problem
from dispatcher.machines.k8s.settings import K8sSettings
from tests.dispatcher.machines.test_k8s_sandbox import CHANNEL_URL, env
from tests.fakes.k8s_sandbox import FakeAgentSandbox

IMAGE = "ghcr.io/voicefleet/bot:1"


def pool_pod(fake: FakeAgentSandbox) -> dict[str, Any]:
    """The pod the pool's template makes (tests/…/test_k8s_sandbox.py `add_pool`)."""
    settings = K8sSettings.from_env(env(fake))
    return pod_body(settings, "voicefleet-bot-abcde", image=IMAGE, env={"BOT_CHANNEL_URL": CHANNEL_URL},
                    labels={}, annotations={}, deadline_seconds=3600)


def problem(pod: dict[str, Any]) -> str | None:
    return pool_pod_problem("voicefleet-bot-abcde", pod, images={IMAGE}, channel_url=CHANNEL_URL)


def test_the_pools_own_pod_passes(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    assert problem(pool_pod(fake_k8s_sandbox)) is None


@pytest.mark.parametrize(("change", "refused"), [
    (lambda spec: spec.__setitem__("ephemeralContainers", [
        {"name": "debugger", "image": IMAGE, "volumeMounts": [{"name": "voicefleet-identity", "mountPath": "/t"}]}]),
     "ephemeral containers"),
    (lambda spec: spec["containers"][0].__setitem__("image", "attacker/steal:latest"), "not the bot's image"),
    (lambda spec: spec["containers"][0].__setitem__("command", ["sh", "-c", "cat /var/run/secrets/*/token"]),
     "command or arguments"),
    (lambda spec: spec["containers"][0].__setitem__("args", ["--room-url", "x"]), "command or arguments"),
    (lambda spec: spec.__setitem__("initContainers", [{"name": "init", "image": IMAGE, "command": ["sh"]}]),
     "command or arguments"),
    (lambda spec: spec["containers"][0]["env"].append({"name": "BOT_CHANNEL_URL", "value": "wss://evil.example"}),
     "dials wss://evil.example"),
    (lambda spec: spec["containers"][0].__setitem__("env", [{"name": "BOT_CHANNEL_URL", "valueFrom": {
        "configMapKeyRef": {"name": "elsewhere", "key": "url"}}}]), "dials None"),
    (lambda spec: spec["containers"][0].__setitem__("env", []), "dials None"),
])
def test_a_pod_not_as_the_pool_makes_it_is_refused(fake_k8s_sandbox: FakeAgentSandbox, change: Any,
                                                  refused: str) -> None:
    pod = copy.deepcopy(pool_pod(fake_k8s_sandbox))
    change(pod["spec"])
    assert refused in str(problem(pod))


def test_with_no_channel_url_known_the_channel_is_not_pinned(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    pod = pool_pod(fake_k8s_sandbox)
    pod["spec"]["containers"][0]["env"] = []
    assert pool_pod_problem("voicefleet-bot-abcde", pod, images={IMAGE}, channel_url=None) is None


def test_while_a_new_image_rolls_out_either_image_passes_but_never_a_mix(fake_k8s_sandbox: FakeAgentSandbox) -> None:
    new = "ghcr.io/voicefleet/bot:2"
    pod = copy.deepcopy(pool_pod(fake_k8s_sandbox))
    pod["spec"]["containers"][0]["image"] = new
    assert pool_pod_problem("voicefleet-bot-abcde", pod, images={IMAGE, new}, channel_url=CHANNEL_URL) is None
    assert "not the bot's image" in str(problem(pod))
    pod["spec"]["initContainers"] = [{"name": "init", "image": IMAGE}]
    assert "not the bot's image" in str(pool_pod_problem("voicefleet-bot-abcde", pod, images={IMAGE, new},
                                                         channel_url=CHANNEL_URL))

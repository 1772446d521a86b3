"""A bot pod's plain env values reach its container as the dispatcher was given them: the kubelet expands
`$(NAME)` in them from the variables before (the bots' Secret's among them) and reads `$$` as `$`, so
`pod_body` doubles every `$` (the `pods` mode, against tests/fakes/k8s.py, whose kubelet expands them)."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.pool_pod import pool_pod_problem
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.settings import K8sSettings
from tests.dispatcher.machines.test_k8s import env, spec
from tests.fakes.k8s import FakeKubernetes, container_env
from tests.fakes.kubelet_expansion import expand

KEYS = "voicefleet-k8s-dev-bot-keys-0123456789ab"
HEADERS = "authorization=Bearer SENTINEL-collector"  # the bots' Secret's collector headers
# Each way a `$` can sit in a value: a reference, escaped ones, odd and even runs, unclosed, at the end.
TEXTS = ["$", "$$", "a$", "$a", "$(", "$)", "$()", "$(X", "$(X)", "$$(X)", "$$$(X)", "$$$$(X)",
         "x$(X)y$$(X)z", "$((X))", "$(X$(X))", "https://evil.example/$(OTEL_EXPORTER_OTLP_HEADERS)"]


def given(fake: FakeKubernetes, values: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """What the container of a pod `pod_body` writes with `values` gets, beside the bots' Secret of `secrets`."""
    settings = K8sSettings.from_env(env(fake, K8S_BOT_SECRET=KEYS))
    body = pod_body(settings, "vf-s1", image=settings.image, env=values, labels={}, annotations={},
                    deadline_seconds=60)
    [container] = body["spec"]["containers"]
    return container_env(container, {KEYS: secrets})


@pytest.mark.parametrize("text", TEXTS)
def test_every_value_reaches_the_container_as_written(fake_k8s: FakeKubernetes, text: str) -> None:
    values = {"X": "defined", "VALUE": text}
    assert given(fake_k8s, values, {"OTEL_EXPORTER_OTLP_HEADERS": HEADERS})["VALUE"] == text


def test_the_fakes_kubelet_expands_a_value_written_as_is() -> None:
    """The control: unescaped, a reference reads the variable, and `$$` is one `$`."""
    defined = {"X": "defined"}
    assert [expand(text, defined) for text in ("$(X)", "$$(X)", "$$$(X)", "$(Y)", "$(X", "$x", "a$")] == [
        "defined", "$(X)", "$defined", "$(Y)", "$(X", "$x", "a$"]


async def test_a_sessions_body_reaches_its_bot_unexpanded(fake_k8s: FakeKubernetes) -> None:
    """Without a bot channel a session's values travel in its pod's env: a `$(…)` in its body stays text, and
    reads none of the bots' keys."""
    fake_k8s.secrets[KEYS] = {"OTEL_EXPORTER_OTLP_HEADERS": HEADERS}
    machines = K8sMachines.from_env(env(fake_k8s, K8S_BOT_SECRET=KEYS))
    body = {"note": "costs $$5 $(OTEL_EXPORTER_OTLP_HEADERS)", "prompt": "$$$(HOME)"}
    try:
        s = spec(channel_token=None, body=body)
        await machines.launch(s)
    finally:
        await machines.aclose()
    [create] = fake_k8s.calls_to("POST", "/pods")
    written = {e["name"]: e["value"] for e in create.json()["spec"]["containers"][0]["env"]}
    assert written["VOICEFLEET_BODY"] == json.dumps(body, separators=(",", ":")).replace("$", "$$")
    got = fake_k8s.envs[f"vf-{s.session_id}"]
    assert json.loads(got["VOICEFLEET_BODY"]) == body and "SENTINEL" not in got["VOICEFLEET_BODY"]


def test_a_pool_pods_channel_with_a_dollar_is_its_own(fake_k8s: FakeKubernetes) -> None:
    """The pool's template is `pod_body`'s too: its channel is compared as written there; a reference is not it."""
    url = "wss://d.example/bots/$(channel)"
    settings = K8sSettings.from_env(env(fake_k8s))
    pod = pod_body(settings, "p", image=settings.image, env={"BOT_CHANNEL_URL": url}, labels={}, annotations={},
                   deadline_seconds=None)
    assert pool_pod_problem("p", pod, images={settings.image}, channel_url=url) is None
    pod["spec"]["containers"][0]["env"] = [{"name": "BOT_CHANNEL_URL", "value": url}]  # read by the kubelet
    assert "dials" in str(pool_pod_problem("p", pod, images={settings.image}, channel_url=url))

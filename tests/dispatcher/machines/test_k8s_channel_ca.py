"""K8S_BOT_CHANNEL_CA_CONFIGMAP: every bot pod projects the channel's CA beside its token and is told where."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.settings import SettingsError

ENV = {"K8S_NAMESPACE": "voicefleet-bots", "BOT_IMAGE": "registry.example.com/bot@sha256:" + "b" * 64,
       "K8S_API_URL": "https://kubernetes.default.svc"}


def body(**env: str) -> dict[str, Any]:
    settings = K8sSettings.from_env({**ENV, **env})
    return pod_body(settings, "vf-s1", image=settings.image, env={"BOT_SESSION_ID": "s1"}, labels={},
                    annotations={}, deadline_seconds=60)


def test_the_ca_is_projected_beside_the_token_and_named_to_the_bot() -> None:
    pod = body(K8S_BOT_CHANNEL_CA_CONFIGMAP="voicefleet-channel-ca")["spec"]
    (volume,) = pod["volumes"]
    token, ca = volume["projected"]["sources"]
    assert "serviceAccountToken" in token
    assert ca == {"configMap": {"name": "voicefleet-channel-ca",
                                "items": [{"key": "ca.crt", "path": "channel-ca.crt"}]}}
    (container,) = pod["containers"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["BOT_CHANNEL_CA_FILE"] == "/var/run/secrets/voicefleet/channel-ca.crt"
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/var/run/secrets/voicefleet",
                                          "readOnly": True}]


def test_without_it_the_pod_is_as_before() -> None:
    pod = body()["spec"]
    assert len(pod["volumes"][0]["projected"]["sources"]) == 1
    assert "BOT_CHANNEL_CA_FILE" not in {entry["name"] for entry in pod["containers"][0]["env"]}


def test_a_name_that_is_no_configmaps_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="K8S_BOT_CHANNEL_CA_CONFIGMAP='Not_A_Name' is not a ConfigMap name"):
        K8sSettings.from_env({**ENV, "K8S_BOT_CHANNEL_CA_CONFIGMAP": "Not_A_Name"})


def test_a_ca_beside_a_plain_channel_url_is_refused_at_start() -> None:
    """Every bot would refuse BOT_CHANNEL_CA_FILE beside a ws:// URL and end: the dispatcher says so first."""
    with pytest.raises(SettingsError, match="K8S_BOT_CHANNEL_CA_CONFIGMAP is set but BOT_CHANNEL_URL is ws://"):
        K8sSettings.from_env({**ENV, "K8S_BOT_CHANNEL_CA_CONFIGMAP": "voicefleet-channel-ca",
                              "BOT_CHANNEL_URL": "ws://dispatcher.voicefleet.svc:8081/bots/channel"})
    assert K8sSettings.from_env({**ENV, "K8S_BOT_CHANNEL_CA_CONFIGMAP": "voicefleet-channel-ca",
                                 "BOT_CHANNEL_URL": "wss://dispatcher.voicefleet.svc:8081/bots/channel"})

"""A Kubernetes warm pool's bot: its template gives it the channel's URL and `BOT_IDENTITY=k8s` but no
credential, so it dials with its pod's identity alone and names itself by its pod (HOSTNAME); any other
bot without a credential is a configuration error."""

from __future__ import annotations

import pytest

from bot.channel_session import machine_identity
from bot.config import ConfigError, load_channel_settings

URL = "wss://d.example/bots/channel"


def test_only_a_kubernetes_pods_bot_may_dial_without_a_credential() -> None:
    pool = load_channel_settings({"BOT_CHANNEL_URL": URL, "BOT_IDENTITY": "k8s"}, cold=False)
    assert pool is not None and pool.token == "" and pool.identity == "k8s"
    for identity in ("", "gce", "fly", "ecs", "modal"):
        with pytest.raises(ConfigError, match="BOT_CHANNEL_TOKEN is not"):
            load_channel_settings({"BOT_CHANNEL_URL": URL, "BOT_IDENTITY": identity}, cold=False)


def test_a_kubernetes_pods_bot_is_its_pod_and_no_other_bot_reads_hostname() -> None:
    assert machine_identity({"BOT_IDENTITY": "k8s", "HOSTNAME": "voicefleet-bot-x7k2p"})[0] == "voicefleet-bot-x7k2p"
    assert machine_identity({"BOT_IDENTITY": "k8s", "HOSTNAME": "p", "BOT_MACHINE_ID": "m"})[0] == "m"
    assert machine_identity({"BOT_IDENTITY": "gce", "HOSTNAME": "shell-host"})[0] != "shell-host"

"""A Kubernetes warm pool's bot: its template gives it the channel's URL and `BOT_IDENTITY=k8s` but no
credential, so it dials with its pod's identity alone and names itself by its pod (HOSTNAME); any other
bot without a credential is a configuration error. Idle, it dials again after its channel drops (an idle
reserve bot, whose credential is spent, retires)."""

from __future__ import annotations

import asyncio

import pytest

from bot.channel_client import ChannelError
from bot.channel_session import ChannelSession, machine_identity
from bot.config import ConfigError, load_channel_settings, load_config
from bot.events import EventWriter
from bot.lifecycle import EndReason, SessionLifecycle
from tests.support.waiting import until

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


class DroppingChannel:
    """The bot's channel, in memory: each `serve` ends as a dropped connection does, until `held`;
    each `connect` is welcomed, or refused as the dispatcher would."""

    def __init__(self, *, refuse: bool = False, drops: int = 1) -> None:
        self.refuse, self.drops, self.dials = refuse, drops, 0
        self.held = asyncio.Event()

    async def connect(self) -> None:
        self.dials += 1
        if self.refuse:
            raise ChannelError("the dispatcher refused the channel (HTTP 403)", refused=True)

    async def serve(self) -> None:
        if self.drops > 0:
            self.drops -= 1
            return
        self.held.set()
        await asyncio.Event().wait()  # connected until the test ends

    async def close(self) -> None:
        pass


def session(env: dict[str, str], channel: DroppingChannel) -> ChannelSession:
    config = load_config([], env)
    assert config.channel is not None
    bot = ChannelSession(config, config.channel, EventWriter(config.session_id), SessionLifecycle(),
                         capabilities=("webrtc",), signalling={})
    bot.channel = channel  # type: ignore[assignment]
    return bot


async def serving(bot: ChannelSession) -> asyncio.Task[None]:
    await bot.open()
    assert bot._serving is not None
    return bot._serving


async def test_an_idle_pool_bot_whose_channel_drops_dials_again_and_stays_idle() -> None:
    channel = DroppingChannel(drops=1)
    bot = session({"BOT_CHANNEL_URL": URL, "BOT_IDENTITY": "k8s"}, channel)
    task = await serving(bot)
    await until(channel.held.is_set, "connected again after the drop", timeout=30)
    assert channel.dials == 2 and not bot.lifecycle.ended
    task.cancel()
    bot.lifecycle.end(EndReason.SIGNAL)


async def test_an_idle_pool_bot_the_dispatcher_refuses_after_a_drop_exits() -> None:
    channel = DroppingChannel(drops=1)
    bot = session({"BOT_CHANNEL_URL": URL, "BOT_IDENTITY": "k8s"}, channel)
    task = await serving(bot)
    channel.refuse = True
    await until(lambda: bot.lifecycle.ended, "the bot ended", timeout=30)
    assert bot.lifecycle.reason is EndReason.CHANNEL_LOST and channel.dials == 2
    await task


async def test_an_idle_reserve_bot_whose_channel_drops_retires_without_dialling_again() -> None:
    channel = DroppingChannel(drops=1)
    bot = session({"BOT_CHANNEL_URL": URL, "BOT_CHANNEL_TOKEN": "r" * 40}, channel)
    task = await serving(bot)
    await until(lambda: bot.lifecycle.ended, "the bot retired", timeout=30)
    assert bot.lifecycle.reason is EndReason.CHANNEL_LOST and channel.dials == 1
    await task

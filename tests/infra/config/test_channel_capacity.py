"""Each AWS dispatcher replica's bot channels (stacks/config/channel_capacity.py): the stack sets
BOT_CHANNEL_MAX_CONNECTIONS and MAX_CONNECTIONS from sessions + reserve with one replica down, and
refuses at preview bots that the surviving replicas cannot take."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from tests.infra.config.test_phone import PHONE
from tests.infra.config.test_store_message_secret import AWS_STORE
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

WITH_STORE = {**SECRETS, **CHANNEL_SECRETS, **AWS_STORE}
AWS_PROD_SIZE = {"maxConcurrentSessions": "2500", "reserveMaxIdle": "400", "reserveMinIdle": "3"}


def env_of(definition: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["environment"]}


def test_aws_prods_sessions_and_reserve_on_two_dispatchers_are_refused(stack: StackRunner) -> None:
    """2,500 sessions + 400 reserve bots = 2,900 channels; with one of two replicas down, one takes all."""
    with pytest.raises(SettingsError, match=r"voicefleet:maxConcurrentSessions plus reserveMaxIdle \(400\) bot "
                                            r"channels must fit dispatcherCount - 1 = 1 replica\(s\) at 2000 .* "
                                            r"set dispatcherCount to at least 3 \(got 2500\)"):
        stack("aws", secrets=WITH_STORE, **CHANNEL["aws"], **AWS_PROD_SIZE, dispatcherCount="2")


def test_three_dispatchers_take_them_and_each_is_told_its_share(stack: StackRunner) -> None:
    run = stack("aws", secrets=WITH_STORE, **CHANNEL["aws"], **AWS_PROD_SIZE, dispatcherCount="3")
    env = env_of(container(run, "-dispatcher"))
    # 2,900 channels over the 2 replicas left when one is down; every call's 3 sockets + 1,000 waits.
    assert (env["BOT_CHANNEL_MAX_CONNECTIONS"], env["MAX_CONNECTIONS"]) == ("1450", "5350")


def test_a_small_stack_keeps_the_dispatchers_defaults(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["aws"])
    env = env_of(container(run, "-dispatcher"))
    assert (env["BOT_CHANNEL_MAX_CONNECTIONS"], env["MAX_CONNECTIONS"]) == ("1000", "4000")


def test_without_the_channel_there_is_no_channel_cap_to_set(stack: StackRunner) -> None:
    env = env_of(container(stack("aws", maxConcurrentSessions="5000"), "-dispatcher"))
    assert "BOT_CHANNEL_MAX_CONNECTIONS" not in env and "MAX_CONNECTIONS" not in env


def relay_notes(stack: StackRunner, monkeypatch: pytest.MonkeyPatch, secrets: dict[str, str],
                **config: str) -> list[str]:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    stack("aws", secrets=secrets, **config)
    return [w for w in warnings if w.startswith("phone calls:")]


def test_with_carriers_a_note_says_when_the_dispatchers_cpu_cannot_relay_every_session(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.37 % of a core per relayed call: one surviving 0.5 vCPU replica relays about 135 calls."""
    phone, size = {**SECRETS, **PHONE}, {"dispatcherCpu": "512", "dispatcherMemory": "1024"}
    (note,) = relay_notes(stack, monkeypatch, phone, maxConcurrentSessions="200", **size)
    assert "1 surviving dispatcher replica(s) of 0.5 vCPU relay about 135 calls" in note
    assert "maxConcurrentSessions=200" in note
    assert relay_notes(stack, monkeypatch, phone, maxConcurrentSessions="100", **size) == []
    assert relay_notes(stack, monkeypatch, SECRETS, maxConcurrentSessions="200", **size) == []


def test_whatsapp_alone_relays_no_call_so_no_relay_note(stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A WhatsApp call reaches its bot over WebRTC: the dispatcher relays no audio for it."""
    from tests.infra.config.test_whatsapp import NUMBERS, WHATSAPP

    size = {"dispatcherCpu": "512", "dispatcherMemory": "1024", "maxConcurrentSessions": "200"}
    assert relay_notes(stack, monkeypatch, {**SECRETS, **WHATSAPP}, whatsappNumbers=NUMBERS, **size) == []

"""Where a locally started bot dials, and the credential it dials with."""

from __future__ import annotations

import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel.access import ChannelAccess


@pytest.mark.parametrize(("host", "dialled"), [
    ("0.0.0.0", "127.0.0.1"),  # every IPv4 address: the bot takes loopback
    ("", "127.0.0.1"),
    ("::", "[::1]"),  # every IPv6 address: IPv6 loopback
    ("192.0.2.7", "192.0.2.7"),  # one address: that one (loopback may not reach it)
    ("2001:db8::7", "[2001:db8::7]"),  # an IPv6 address in a URL is bracketed
    ("127.0.0.1", "127.0.0.1"),
])
def test_a_local_bot_dials_the_address_the_dispatcher_listens_on(host: str, dialled: str) -> None:
    access = ChannelAccess.generated()
    assert access.url is None  # unknown until the socket is bound
    access.bind(host, 8765)
    assert access.url == f"ws://{dialled}:8765{CHANNEL_PATH}"


def test_each_run_without_a_deployment_secret_makes_its_own() -> None:
    one, other = ChannelAccess.generated(), ChannelAccess.generated()
    credential = one.credentials.issue("session", "s-1", 600)
    assert one.credentials.verify(credential) is not None  # control: its own run admits it
    assert other.credentials.verify(credential) is None  # another run's bots cannot dial this one

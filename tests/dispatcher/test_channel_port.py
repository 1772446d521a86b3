"""BOT_CHANNEL_PORT: the bots' routes on a port of their own, in a real `python -m dispatcher`."""

from __future__ import annotations

import shlex

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from botchannel.contract import CHANNEL_PATH
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.ports import free_port
from tests.support.processes import listens, run_dispatcher


def refusal(url: str) -> tuple[int, bytes]:
    """The HTTP answer a WebSocket handshake without a credential gets."""
    with pytest.raises(InvalidStatus) as refused:
        connect(url, proxy=None, open_timeout=20).close()
    return refused.value.response.status_code, refused.value.response.body or b""


def test_the_bots_routes_answer_on_the_channel_port_and_nowhere_else(tmp_path):
    port = free_port()
    channel_port = next(p for p in iter(free_port, None) if p != port)
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
           "RESERVE_MAX_IDLE": "0", "BOT_CHANNEL_PORT": str(channel_port)}
    with run_dispatcher(tmp_path, env, port=port) as running:
        assert listens(running.process, channel_port)  # one process, both sockets
        # The session's values reach its bot only over the channel: the bot found it on the channel port.
        assert httpx.post(f"{running.base_url}/start?wait=started", json={}, timeout=30).status_code == 201

        # A WebSocket on the public port is closed before its handshake (HTTP 403), with no ERROR logged:
        # the public port is the internet's, and each one would otherwise be an alert.
        for _ in range(3):
            assert refusal(f"ws://127.0.0.1:{port}{CHANNEL_PATH}")[0] == 403
        assert httpx.get(f"{running.base_url}/bots/media/some-session", timeout=10).status_code == 404
        # The port the connection arrived on decides, never the Host a client names.
        assert httpx.get(f"{running.base_url}/bots/media/some-session", timeout=10,
                         headers={"Host": f"127.0.0.1:{channel_port}"}).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{channel_port}/healthz", timeout=10,
                         headers={"Host": f"127.0.0.1:{port}"}).status_code == 404

        # On the channel port the channel itself answers: a bot without its credential is refused by it.
        assert refusal(f"ws://127.0.0.1:{channel_port}{CHANNEL_PATH}")[0] == 403
        for method, path in (("GET", "/healthz"), ("POST", "/start"), ("GET", "/")):
            answer = httpx.request(method, f"http://127.0.0.1:{channel_port}{path}", json={}, timeout=10)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["message"].startswith("this port serves the bot channel only")
        assert "ERROR" not in running.log() and "handshake" not in running.log()


def test_without_a_channel_port_the_api_port_serves_the_channel(tmp_path):
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as running:
        assert refusal(running.base_url.replace("http", "ws", 1) + CHANNEL_PATH)[0] == 403


@pytest.mark.parametrize(("value", "message"), [
    ("8080", "BOT_CHANNEL_PORT=8080 is PORT too: give the bot channel a port of its own"),
    ("0", "BOT_CHANNEL_PORT=0 must be at least 1"),
    ("65536", "BOT_CHANNEL_PORT=65536 must be at most 65535"),
    ("channel", "BOT_CHANNEL_PORT='channel' is not a whole number"),
])
def test_a_bad_channel_port_is_refused_by_name(value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"PORT": "8080", "BOT_CHANNEL_PORT": value})


def test_the_channel_port_is_read():
    assert Settings.from_env({"BOT_CHANNEL_PORT": " 8081 "}).bot_channel_port == 8081
    assert Settings.from_env({}).bot_channel_port is None

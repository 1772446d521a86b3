"""The bot channel over TLS: a real `python -m dispatcher` serving its channel port with a certificate the
test makes (a CA and its leaf, shaped as the Kubernetes stack makes them), and a real `python -m bot`
dialling it over `wss://`, trusting that CA through BOT_CHANNEL_CA_FILE."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidMessage
from websockets.sync.client import connect

from botchannel.contract import CHANNEL_PATH
from dispatcher.serving.channel_tls import server_context
from dispatcher.settings import Settings, SettingsError
from tests.support.channel_certs import SERVICE_NAMES, channel_certs
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
GREETER = REPO / "tests" / "bots" / "greeter.py"


def tls_env(tmp_path: Path, ca: Path) -> tuple[dict[str, str], int]:
    certs = channel_certs(tmp_path)
    channel_port = free_port()
    return {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(GREETER), "BOT_CHANNEL_PORT": str(channel_port),
            "BOT_CHANNEL_TLS_CERT_FILE": str(certs.cert), "BOT_CHANNEL_TLS_KEY_FILE": str(certs.key),
            "BOT_CHANNEL_CA_FILE": str(ca if ca.name != "-" else certs.ca)}, channel_port


def test_a_real_bot_takes_its_session_over_a_wss_channel(tmp_path: Path) -> None:
    env, channel_port = tls_env(tmp_path, Path("-"))
    ca = env["BOT_CHANNEL_CA_FILE"]
    with run_dispatcher(tmp_path, {**env, "HEADER_TIMEOUT_SECONDS": "2"}) as running:
        # A connection that never starts its handshake is closed after HEADER_TIMEOUT_SECONDS, as one that never
        # sends its request's head is (not after asyncio's own 60 s).
        with socket.create_connection(("127.0.0.1", channel_port), timeout=30) as silent:
            assert silent.recv(1) == b""
        # The session's values reach its bot only over the channel: a started session is a bot welcomed on it.
        started = httpx.post(f"{running.base_url}/start?wait=started", json={}, timeout=60)
        assert started.status_code == 201, running.log()
        # The public port stays plain HTTP (its proxy terminates TLS); the channel's port speaks TLS only.
        assert httpx.get(f"{running.base_url}/healthz", timeout=10).status_code == 200
        with pytest.raises((InvalidMessage, OSError, EOFError)):
            connect(f"ws://127.0.0.1:{channel_port}{CHANNEL_PATH}", proxy=None, open_timeout=10).close()
        # Its certificate is the leaf for the Service's names, checked against the CA by name too.
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        with context.wrap_socket(socket.create_connection(("127.0.0.1", channel_port), timeout=10),
                                 server_hostname=SERVICE_NAMES[0]) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert httpx.delete(f"{running.base_url}/sessions/{started.json()['session_id']}", timeout=30).is_success
        # Refused handshakes (a silent dial, a plain one) are not logged one by one: anyone may dial.
        assert "Traceback" not in running.log() and "SSL" not in running.log(), running.log()


def test_a_bot_trusting_another_ca_is_refused_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    other = channel_certs(tmp_path, "other").ca
    env, _ = tls_env(tmp_path, other)
    with run_dispatcher(tmp_path, env) as running:
        started = httpx.post(f"{running.base_url}/start?wait=started", json={}, timeout=60)
        assert started.status_code != 201
        wait_until(lambda: "exited (exit code" in running.log(), "the bot's end", timeout=60, detail=running.log)
        # Refused at its first dial, never dialled again: another dial would meet the same certificate.
        ended = next(line for line in running.log().splitlines() if "exited (exit code" in line)
        assert f"is not trusted by the CA in BOT_CHANNEL_CA_FILE={other}" in ended, ended
        assert "self-signed certificate in certificate chain" in ended and "dialling again" not in running.log()
        assert "Traceback" not in running.log()


def test_the_channel_tls_settings_come_in_pairs_on_the_channel_port() -> None:
    both = {"BOT_CHANNEL_PORT": "8081", "BOT_CHANNEL_TLS_CERT_FILE": "/c", "BOT_CHANNEL_TLS_KEY_FILE": "/k"}
    assert Settings.from_env(both).bot_channel_tls == ("/c", "/k")
    assert Settings.from_env({"BOT_CHANNEL_PORT": "8081"}).bot_channel_tls is None
    with pytest.raises(SettingsError, match="BOT_CHANNEL_TLS_KEY_FILE is unset"):
        Settings.from_env({"BOT_CHANNEL_PORT": "8081", "BOT_CHANNEL_TLS_CERT_FILE": "/c"})
    with pytest.raises(SettingsError, match="without BOT_CHANNEL_PORT"):
        Settings.from_env({"BOT_CHANNEL_TLS_CERT_FILE": "/c", "BOT_CHANNEL_TLS_KEY_FILE": "/k"})


def test_a_missing_or_mismatched_key_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    certs, other = channel_certs(tmp_path), channel_certs(tmp_path, "other")
    assert server_context(str(certs.cert), str(certs.key))
    with pytest.raises(SettingsError, match="BOT_CHANNEL_TLS_KEY_FILE: no file at"):
        server_context(str(certs.cert), str(tmp_path / "absent.key"))
    with pytest.raises(SettingsError, match="are not a PEM certificate chain and its private key"):
        server_context(str(certs.cert), str(other.key))


def test_silent_dials_to_the_tls_port_count_against_max_connections(tmp_path: Path) -> None:
    """A connection in its handshake holds a descriptor as a plain one does: past MAX_CONNECTIONS the oldest
    goes (long before HEADER_TIMEOUT_SECONDS), so a flood of dials that never say hello cannot exhaust them."""
    env, channel_port = tls_env(tmp_path, Path("-"))
    with run_dispatcher(tmp_path, {**env, "MAX_CONNECTIONS": "8", "HEADER_TIMEOUT_SECONDS": "120"}) as running:
        silent = [socket.create_connection(("127.0.0.1", channel_port), timeout=30) for _ in range(12)]
        try:
            closed = 0
            for sock in silent[:4]:
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
            assert closed == 4, running.log()
            # The newest still run their handshake, and a bot's dial still gets its room.
            started = httpx.post(f"{running.base_url}/start?wait=started", json={}, timeout=60)
            assert started.status_code == 201, running.log()
        finally:
            for sock in silent:
                sock.close()

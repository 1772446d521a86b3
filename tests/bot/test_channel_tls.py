"""BOT_CHANNEL_CA_FILE: what a bot trusts on a wss:// channel, and the mistakes refused at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from bot.channel_tls import UntrustedChannel, channel_context
from bot.config import ConfigError, load_channel_settings
from tests.support.channel_certs import channel_certs, renewed_ca

URL = "wss://dispatcher.voicefleet.svc:8081/bots/channel"


def test_a_wss_channel_trusts_the_ca_file_only_and_checks_the_name(tmp_path: Path) -> None:
    ca = channel_certs(tmp_path).ca
    settings = load_channel_settings({"BOT_CHANNEL_URL": URL, "BOT_CHANNEL_TOKEN": "t",
                                      "BOT_CHANNEL_CA_FILE": str(ca)}, cold=True)
    assert settings is not None and settings.ca_file == str(ca)
    context = channel_context(URL, settings.ca_file)
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # that CA alone, not the system's beside it
    assert channel_context(URL.replace("wss", "ws", 1), None) is None


def test_a_ca_file_with_a_plain_channel_or_no_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BOT_CHANNEL_CA_FILE is set but BOT_CHANNEL_URL is ws://"):
        load_channel_settings({"BOT_CHANNEL_URL": URL.replace("wss", "ws", 1), "BOT_CHANNEL_TOKEN": "t",
                               "BOT_CHANNEL_CA_FILE": str(channel_certs(tmp_path).ca)}, cold=True)
    with pytest.raises(ConfigError, match="BOT_CHANNEL_CA_FILE=.*absent.crt is not a file"):
        load_channel_settings({"BOT_CHANNEL_URL": URL, "BOT_CHANNEL_TOKEN": "t",
                               "BOT_CHANNEL_CA_FILE": str(tmp_path / "absent.crt")}, cold=True)
    not_pem = tmp_path / "not.crt"
    not_pem.write_text("not a certificate")
    with pytest.raises(UntrustedChannel, match="BOT_CHANNEL_CA_FILE=.*not.crt is not a readable PEM CA"):
        channel_context(URL, str(not_pem))


async def test_the_media_socket_and_a_recording_part_check_the_name_the_url_dials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA vouches for the leaf, but a URL naming a host the leaf does not name is refused: the name is
    checked on the real dials (websockets' and aiohttp's), not only set on the context."""
    import asyncio

    import aiohttp

    from bot.carrier_socket import MediaAttachError, dial_media
    from dispatcher.serving.channel_tls import server_context

    certs = channel_certs(tmp_path)
    monkeypatch.setenv("BOT_CHANNEL_CA_FILE", str(certs.ca))

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=server_context(str(certs.cert), str(certs.key)))
    port = server.sockets[0].getsockname()[1]
    async with server:
        # `localhost` resolves to the same server, but the leaf names 127.0.0.1 and the Service's names only.
        with pytest.raises(MediaAttachError, match="certificate verify failed: Hostname mismatch"):
            await dial_media(f"wss://localhost:{port}/bots/channel", {"path": "/media/x", "token": "t"})
        # The leaf's own address passes the certificate check (then the server hangs up).
        with pytest.raises(MediaAttachError) as plain:
            await dial_media(f"wss://127.0.0.1:{port}/bots/channel", {"path": "/media/x", "token": "t"})
        assert "certificate verify failed" not in str(plain.value)
        context = channel_context(f"https://localhost:{port}/", str(certs.ca))
        assert context is not None
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError, match="Hostname mismatch"):
                await http.put(f"https://localhost:{port}/parts/1", data=b"x", ssl=context)


async def test_a_renewed_ca_certificate_and_the_one_before_it_vouch_for_the_same_leaves(tmp_path: Path) -> None:
    """The stack renews the CA's certificate, never its key: a bot whose mounted CA is still the one before
    the renewal (the kubelet updates a ConfigMap's files within a minute or two) trusts a leaf signed after
    it, and one with the renewed CA a leaf signed before (docs/kubernetes.md, "The channel's TLS")."""
    import asyncio

    from dispatcher.serving.channel_tls import server_context

    certs = channel_certs(tmp_path)
    renewed = renewed_ca(certs)
    assert renewed.read_bytes() != certs.ca.read_bytes()

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=server_context(str(certs.cert), str(certs.key)))
    port = server.sockets[0].getsockname()[1]
    async with server:
        for ca in (certs.ca, renewed):
            context = channel_context(f"wss://127.0.0.1:{port}/", str(ca))
            assert context is not None
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            writer.close()

"""`python -m dispatcher`: serve the dispatcher with uvicorn. Configuration is the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from dispatcher.artifacts.building import Artifacts
from dispatcher.factory import configuration_problems
from dispatcher.machines.k8s.served import cluster_problems
from dispatcher.machines.local.isolation import protect_dispatcher
from dispatcher.observability import log_format, log_redaction, tracing
from dispatcher.regions.peers import conflicts_at_start
from dispatcher.serving.channel_tls import ChannelTlsServer, server_context
from dispatcher.serving.collector import tune_collector
from dispatcher.serving.draining import DrainingServer
from dispatcher.serving.server import uvicorn_config
from dispatcher.settings import Settings, SettingsError
from dispatcher.settings.derived import profile_problems
from dispatcher.settings.help import environment_help
from dispatcher.settings.sources import SourceError, resolve
from dispatcher.settings.typos import deprecated, misspelt
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry, setting_choice, setting_int

if TYPE_CHECKING:  # the app itself is imported once the configuration is known to be good
    from dispatcher.api.state import AppState

LOG_LEVELS = entry("LOG_LEVEL", ENUM).choices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher",
        description="voicefleet dispatcher: POST /start runs one fresh bot per voice session.",
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="overrides HOST")
    parser.add_argument("--port", type=int, help="overrides PORT (0 picks a free port)")
    args = parser.parse_args(argv)

    try:  # the file VOICEFLEET_CONFIG names, and VOICEFLEET_SIZE's and VOICEFLEET_PROFILE's defaults
        resolved = resolve(os.environ)
    except SourceError as exc:
        print(f"dispatcher: configuration error: {exc}", file=sys.stderr)
        return 2
    env = resolved.env
    if typos := misspelt(env):  # a misspelt setting would be ignored in silence
        if resolved.profile == "prod":
            print(f"dispatcher: configuration error: {'; '.join(typos)}", file=sys.stderr)
            return 2
        print(f"dispatcher: warning: {'; '.join(typos)}", file=sys.stderr)
    if old_names := deprecated(env):  # still read, as their new names
        print(f"dispatcher: warning: {'; '.join(old_names)}", file=sys.stderr)
    if args.host:
        env["HOST"] = args.host
    if args.port is not None:
        env["PORT"] = str(args.port)
    problems = []
    try:
        level = setting_choice(env, "LOG_LEVEL")
    except SettingsError as exc:
        level, problems = "info", [str(exc)]
    try:
        chosen_format = setting_choice(env, "LOG_FORMAT")
    except SettingsError as exc:
        problems.append(str(exc))
    problems += profile_problems(env, resolved.profile) + configuration_problems(env)
    if not problems and setting_choice(env, "MACHINES") == "k8s":  # what the cluster serves, read once
        problems += asyncio.run(cluster_problems(env))
    if problems:
        print(f"dispatcher: configuration error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    fields = log_format.install(level, chosen_format, replica="starting")
    log_redaction.install()  # the channel's handshake headers carry the bot credential
    try:
        settings = Settings.from_env(env)
        if settings.machines == "local":
            protect_dispatcher()  # its bots share this host and user: none may read this process
        channel_tls = None if settings.bot_channel_tls is None else server_context(*settings.bot_channel_tls)
        grace = setting_int(env, "SHUTDOWN_GRACE_SECONDS")
        from dispatcher.app import create_app  # after validation: a bad setting fails fast and plainly

        app = create_app(settings, env=env)
        replica = app.state.voicefleet.replication.coordination.replica_id
        fields.replica = replica  # the store's name for this replica, on every line and trace
        tracing.configure(env, replica)
    except (SettingsError, ValueError) as exc:
        print(f"dispatcher: configuration error: {exc}", file=sys.stderr)
        return 2
    state: AppState = app.state.voicefleet
    if state.peers.regions.several and (conflicts := asyncio.run(conflicts_at_start(state.peers.regions))):
        print(f"dispatcher: configuration error: {'; '.join(conflicts)}", file=sys.stderr)
        return 2
    sockets: list[socket.socket] = []
    for port in (settings.port, settings.bot_channel_port):
        if port is None:
            continue
        try:  # one server, both sockets: dispatcher/api/channel_port.py tells them apart
            sockets.append(bind_socket(settings.host, port))
        except OSError as exc:
            for bound in sockets:
                bound.close()
            print(f"dispatcher: cannot listen on {settings.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    sock, channel_sock = sockets[0], sockets[-1]
    if state.channel_access is not None and settings.machines == "local":
        # Local bots dial the port actually bound: the channel's own when there is one.
        state.channel_access.bind(settings.host, channel_sock.getsockname()[1], tls=channel_tls is not None)
    config = uvicorn_config(app, keep_alive_seconds=settings.keep_alive_seconds,
                            header_timeout_seconds=settings.header_timeout_seconds, log_level=level,
                            write_timeout_seconds=settings.write_timeout_seconds,
                            max_connections=settings.max_connections, max_body_bytes=settings.max_request_bytes,
                            max_part_bytes=_parts_taken(state.artifacts),
                            graceful_shutdown_seconds=grace, own_log_format=chosen_format == "text")
    phone = state.phone
    draining: dict[str, Any] = {
        "calls": lambda: phone.active_calls,
        "start_draining": phone.start_draining,
        "drain_seconds": phone.settings.drain_seconds,
        "replica_drain": state.replication.drain,  # on SIGTERM
    }
    # With BOT_CHANNEL_TLS_*: the channel's socket over TLS, the public port plain (its proxy's TLS).
    server = (DrainingServer(config, **draining) if channel_tls is None else
              ChannelTlsServer(config, tls_socket=channel_sock, context=channel_tls, **draining))
    if settings.machines == "local":
        print(f"voicefleet: open http://{_display(settings.host)}:{sock.getsockname()[1]}/ to talk to a bot",
              file=sys.stderr)
    tune_collector()
    server.run(sockets=sockets)
    return 0


def bind_socket(host: str, port: int) -> socket.socket:
    """Bound here rather than by uvicorn, so the real port (`PORT=0`) is known before any bot starts.

    The protocol is named (IPPROTO_TCP, not 0): asyncio turns Nagle off (TCP_NODELAY) only on
    sockets that say they are TCP, and without it a keep-alive client waits ~40 ms (delayed ACK)
    for every response written in more than one piece, which is every response. Not inheritable:
    one process serves it, and a process it starts (a local bot) must never accept its clients."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _parts_taken(artifacts: Artifacts | None) -> int:
    """The largest recording part this dispatcher takes itself: a local folder store's, when it records."""
    if artifacts is None or artifacts.local is None or not artifacts.settings.on:
        return 0
    return artifacts.settings.part_bytes


def _display(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())

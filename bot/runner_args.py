"""The runner arguments Pipecat's own runner would hand a bot, built from the host's assignment.

Pipecat's development runner (`pipecat/runner/run.py`) builds them per transport: Daily from the
room and token, SmallWebRTC from the peer connection its offer handler answered, WebSocket from
the accepted socket, each with the client's `body` and a `session_id`. It leaves signal handling
to itself (`handle_sigint`/`handle_sigterm` False) and the pipeline idle timeout at its default;
the host does the same, with the idle timeout the deployment configured. The host owns signals
too: a SIGTERM ends the session through the host's lifecycle, which then stops the bot's workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipecat.runner.types import (
    DailyRunnerArguments,
    RunnerArguments,
    SmallWebRTCRunnerArguments,
    WebSocketRunnerArguments,
)


def _host_defaults(args: RunnerArguments, idle_timeout: float) -> None:
    args.handle_sigint = False
    args.handle_sigterm = False
    args.pipeline_idle_timeout_secs = idle_timeout


def daily_arguments(
    room_url: str, token: str | None, *, body: Mapping[str, Any], session_id: str, idle_timeout: float
) -> DailyRunnerArguments:
    args = DailyRunnerArguments(room_url=room_url, token=token, body=dict(body), session_id=session_id)
    _host_defaults(args, idle_timeout)
    return args


def webrtc_arguments(
    connection: Any, *, body: Mapping[str, Any], session_id: str, idle_timeout: float
) -> SmallWebRTCRunnerArguments:
    """`connection` is the `SmallWebRTCConnection` that answered the offer (its answer is set)."""
    args = SmallWebRTCRunnerArguments(webrtc_connection=connection, body=dict(body), session_id=session_id)
    _host_defaults(args, idle_timeout)
    return args


def websocket_arguments(
    websocket: Any,
    *,
    body: Mapping[str, Any],
    session_id: str,
    idle_timeout: float,
    transport_type: str | None = None,
) -> WebSocketRunnerArguments:
    """`websocket` is anything Pipecat's FastAPI WebSocket transport accepts (Starlette's
    `WebSocket` interface). `transport_type` "websocket" for a plain client; None lets
    `create_transport` detect the telephony provider from the first messages, as the runner does."""
    args = WebSocketRunnerArguments(
        websocket=websocket, transport_type=transport_type, body=dict(body), session_id=session_id
    )
    _host_defaults(args, idle_timeout)
    return args

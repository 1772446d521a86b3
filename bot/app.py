"""Entry point: configuration → the chosen transport's mode → exit code.

Only the chosen transport's module is imported (webrtc never loads Daily and vice versa), and
nothing from Pipecat is imported before the configuration is known to be valid, so `--help` and
usage errors are instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import EXIT_USAGE, BotConfig, ConfigError, load_config
from bot.events import EventWriter
from bot.lazy_imports import defer_unused_imports
from bot.shutdown import run_bounded

if TYPE_CHECKING:
    from bot.lifecycle import SessionLifecycle


def configure_logging() -> None:
    """Logs to stderr (stdout is reserved for JSON events); BOT_LOG_LEVEL, default INFO."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("BOT_LOG_LEVEL", "INFO").upper())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv, os.environ)
    except ConfigError as exc:
        print(f"python -m bot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging()
    defer_unused_imports()
    events = EventWriter(config.session_id)
    try:
        if config.check:
            return run_bounded(_check(config, events))
        outcome = run_bounded(_serve(config, events))
    except ConfigError as exc:
        print(f"python -m bot: error: {exc}", file=sys.stderr)
        events.emit("ended", reason="config_error", exit_code=EXIT_USAGE, detail=str(exc))
        return EXIT_USAGE
    except Exception as exc:
        from loguru import logger

        from bot.lifecycle import EXIT_ERROR, EndReason

        logger.exception("bot failed")
        events.emit("ended", reason=EndReason.ERROR.value, exit_code=EXIT_ERROR, detail=type(exc).__name__)
        return EXIT_ERROR
    reason = outcome.reason
    events.emit("ended", reason=reason.value, exit_code=reason.exit_code, detail=outcome.detail)
    return reason.exit_code


async def _check(config: BotConfig, events: EventWriter) -> int:
    if config.transport == "daily":
        from bot import daily_mode

        return await daily_mode.check(config, events)
    from bot import webrtc_mode

    return await webrtc_mode.check(config, events)


async def _serve(config: BotConfig, events: EventWriter) -> SessionLifecycle:
    if config.transport == "daily":
        from bot import daily_mode

        return await daily_mode.serve(config, events)
    from bot import webrtc_mode

    return await webrtc_mode.serve(config, events)

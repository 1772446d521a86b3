"""Entry point: configuration → the chosen transport's mode → exit code.

Only the chosen transport's module is imported (webrtc never loads Daily and vice versa), and
nothing from Pipecat is imported before the configuration is known to be valid, so `--help` and
usage errors are instant.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from bot import dataclass_code
from bot.config import ENV_SESSION_ID, EXIT_USAGE, BotConfig, ConfigError, load_config
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
        # Also on stdout, for the dispatcher: the reason becomes the session's `detail`.
        events = EventWriter(os.environ.get(ENV_SESSION_ID, ""))
        events.emit("ended", reason="config_error", exit_code=EXIT_USAGE, detail=str(exc))
        return EXIT_USAGE
    configure_logging()
    from bot.lifecycle import remember_signals_during_start_up  # not before: `--help` stays import-free

    remember_signals_during_start_up()
    # A session does no linear algebra; OpenBLAS would otherwise start a thread per core at
    # numpy import (~100 ms of CPU) and compete with the audio for the machine's core(s).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    defer_unused_imports()
    events = EventWriter(config.session_id)
    try:
        mode = import_mode(config)
        dataclass_code.finish()  # the imports defined the dataclasses that ready needs
        end_startup_gc_pause()
        if config.check:
            code: int = run_bounded(mode.check(config, events))
            return code
        outcome: SessionLifecycle = run_bounded(mode.serve(config, events))
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


def import_mode(config: BotConfig) -> ModuleType:
    """The chosen transport's module (`check` and `serve`); importing it is most of start-up."""
    if config.transport == "daily":
        from bot import daily_mode

        return daily_mode
    from bot import webrtc_mode

    return webrtc_mode


def end_startup_gc_pause() -> None:
    """Re-enables the garbage collector that bot/__main__.py paused for the imports.

    Start-up allocates ~130k objects (modules, classes, pydantic schemas) that live as long as
    the process: scanning them during the imports cost ~60 ms, and freezing them keeps the
    collector from rescanning them during the session, where pauses would delay audio.
    """
    gc.freeze()
    gc.enable()

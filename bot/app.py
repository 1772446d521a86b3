"""Entry point: configuration → the chosen transport's mode → the user's bot file, warm → exit code.

Only the chosen transport's module is imported (webrtc never loads Daily and vice versa), and
nothing from Pipecat is imported before the configuration is known to be valid, so `--help` and
usage errors are instant. Then, before anything is announced, the user's bot file is imported
(with everything it imports at module level), the Silero model loaded and its optional
`prewarm()` run: a session finds all of it done. A file that cannot serve ends the process with
exit code 4 and an `ended` event whose detail names the file and the exception.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Coroutine, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from bot import dataclass_code, tracing
from bot.config import ENV_SESSION_ID, EXIT_USAGE, BotConfig, ConfigError, load_config
from bot.events import EventWriter, claim_stdout
from bot.lazy_imports import defer_unused_imports
from bot.shutdown import run_bounded
from bot.user_bot import BotFileError, UserBot, load_user_bot, prewarm
from voicefleet_settings.read import setting_choice, setting_text

if TYPE_CHECKING:
    from bot.lifecycle import SessionLifecycle

T = TypeVar("T")


# Modules that echo the caller's data at DEBUG: Pipecat's runner prints a `body` that failed to parse
# as a Daily dial-in request (with the Daily API key such a body carries). They log from INFO up.
QUIET_AT_DEBUG = ("pipecat.runner.utils",)


def configure_logging(session_id: str) -> None:
    """Logs to stderr (stdout is reserved for JSON events); BOT_LOG_LEVEL, default INFO. Neither the
    channel's frames and handshake (its credential, the `assign`) nor the caller's `body` reach
    them at any level, also when the user's bot turns standard logging to DEBUG.

    voicefleet's handler is loguru's handler 0, as the default one is under Pipecat's runner: a bot
    file that replaces it at import (`logger.remove(0)` then its own `logger.add`, as Pipecat's
    examples do) does so here too, and its lines still go to stderr, the session's log. A second
    handler keeps the last of the same lines for a recorded session (bot/log_tail.py)."""
    loguru_without_its_default_handler()
    from loguru import logger

    from bot import log_format, log_tail
    from bot.events import LOG_FORMAT, tag_logs
    from botchannel.wire_logs import keep_wire_out_of

    logger.remove()
    tag_logs(session_id)
    level = setting_choice(os.environ, "BOT_LOG_LEVEL")  # checked by load_config: loguru's level names
    quiet: dict[str | None, str | int | bool] = {"": level, **dict.fromkeys(QUIET_AT_DEBUG, "INFO")}
    if log_format.wanted(os.environ):  # LOG_FORMAT=json: one object a line, its session and trace ids in it
        logger.add(log_format.json_sink, level=level, filter=quiet)
    else:  # text: every line names its session
        logger.add(sys.stderr, level=level, format=LOG_FORMAT, filter=quiet)
    # The same lines, the last few thousand, for the session's recording (logs.jsonl): after handler 0.
    log_tail.TAIL.mask_secrets_of(os.environ)  # the bot's own keys never reach the session's logs.jsonl
    logger.add(log_tail.TAIL.sink, level=level, filter=quiet, format="{message}")
    keep_wire_out_of()


def loguru_without_its_default_handler() -> None:
    """Imports loguru without the stderr handler it adds at import (LOGURU_AUTOINIT, loguru's own
    switch), so the next `logger.add` gets id 0; the variable is restored at once, so a process the
    bot starts gets loguru's default as usual. A no-op when loguru is already imported."""
    if "loguru" in sys.modules:
        return
    before = os.environ.pop("LOGURU_AUTOINIT", None)
    os.environ["LOGURU_AUTOINIT"] = "false"
    try:
        import loguru  # noqa: F401
    finally:
        os.environ.pop("LOGURU_AUTOINIT", None)
        if before is not None:
            os.environ["LOGURU_AUTOINIT"] = before


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv, os.environ)
    except ConfigError as exc:
        print(f"python -m bot: error: {exc}", file=sys.stderr)
        # Also on stdout, for the dispatcher: the reason becomes the session's `detail`.
        events = EventWriter(setting_text(os.environ, ENV_SESSION_ID))
        events.emit("ended", reason="config_error", exit_code=EXIT_USAGE, detail=str(exc))
        return EXIT_USAGE
    configure_logging(config.session_id)
    from bot.lifecycle import remember_signals_during_start_up  # not before: `--help` stays import-free

    remember_signals_during_start_up()
    # A session does no linear algebra; OpenBLAS would otherwise start a thread per core at
    # numpy import (~100 ms of CPU) and compete with the audio for the machine's core(s).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    defer_unused_imports()
    events = EventWriter(config.session_id, claim_stdout())  # before the bot file can print
    try:
        mode = import_mode(config)
        user_bot = warm_up(config)
        tracing.configure()  # after the bot file's import: a provider it installed is kept
        dataclass_code.finish()  # the imports defined the dataclasses that ready needs
        end_startup_gc_pause()
        if config.check:
            from bot.recording.checks import recording_problem

            if (problem := recording_problem(os.environ, config.bot_file.parent)) is not None:
                raise ConfigError(problem)
            code: int = run_bounded(_prewarmed(user_bot, mode.check(config, user_bot, events)))
            return code
        outcome: SessionLifecycle = run_bounded(_prewarmed(user_bot, mode.serve(config, user_bot, events)))
    except BotFileError as exc:
        from bot.lifecycle import EXIT_BOT_FAILED, EndReason

        print(f"python -m bot: error: {exc}", file=sys.stderr)
        events.emit("ended", reason=EndReason.BOT_FAILED.value, exit_code=EXIT_BOT_FAILED, detail=str(exc))
        return EXIT_BOT_FAILED
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
    """The chosen transport's module (`check` and `serve`); importing it is most of start-up.

    Without the transport's packages (bot/missing_extra.py): a reserve bot whose Python has the other
    web transport's serves that one; a bot with no session yet that can take calls serves calls; any
    other ends with the extra to add (exit 2, a configuration error)."""
    if config.transport == "websocket":  # a phone call's media, relayed by the dispatcher
        from bot import websocket_mode

        return websocket_mode
    try:
        return _transport_mode(config.transport)
    except ImportError as exc:
        from bot.missing_extra import and_the_files_problem, explain, missing_extra, other_web_transport

        missing = missing_extra(config.transport, exc)
        if missing is None:
            raise
        from bot import websocket_mode

        why = explain(config.transport, *missing)
        reserve = config.channel is not None and not config.channel.cold
        if reserve and (other := other_web_transport(config.transport)) is not None:
            from loguru import logger

            # A reserve bot of a project built for the other web transport (a Daily-only bot where the
            # default is webrtc) waits for that one's sessions (and calls): they start warm, not cold.
            logger.warning(f"{why}; until then this reserve bot takes {other} sessions and phone calls")
            return _transport_mode(other)
        unassigned = config.check or reserve
        if unassigned and websocket_mode.can_take_calls():
            from loguru import logger

            logger.warning(f"{why}; until then this bot takes phone calls only")
            return websocket_mode
        raise ConfigError(and_the_files_problem(why, config.transport, lambda: _load_bot_file(config))) from None


def _transport_mode(transport: str) -> ModuleType:
    if transport == "daily":
        from bot import daily_mode

        return daily_mode
    from bot import webrtc_mode

    return webrtc_mode


def warm_up(config: BotConfig) -> UserBot:
    """The user's bot imported and the Silero model loaded (its `prewarm()` runs in the loop)."""
    from bot.warm_vad import preload_silero

    user_bot = _load_bot_file(config)
    preload_silero()
    return user_bot


def _load_bot_file(config: BotConfig) -> UserBot:
    # The bot's working directory is its own folder, as under Pipecat's runner (`uv run bot.py` from
    # the project): a file it opens or writes by a relative name (a prompt, a recording) is its
    # folder's. Here, in the bot host's own process, not in the loader a test process calls too.
    os.chdir(config.bot_file.parent)
    return load_user_bot(config.bot_file)


async def _prewarmed(user_bot: UserBot, then: Coroutine[Any, Any, T]) -> T:
    """The bot's own `prewarm()` runs in the loop its session will run in (its resources stay usable)."""
    try:
        await prewarm(user_bot)
    except BaseException:
        then.close()
        raise
    return await then

def end_startup_gc_pause() -> None:
    """Re-enables the garbage collector that bot/__main__.py paused for the imports.

    Start-up allocates ~130k objects (modules, classes, pydantic schemas) that live as long as
    the process: scanning them during the imports cost ~60 ms, and freezing them keeps the
    collector from rescanning them during the session, where pauses would delay audio.
    """
    gc.freeze()
    gc.enable()

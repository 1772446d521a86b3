"""Runs the user's `bot(runner_args)` (or its known entry shape) for the one session and stops it when
the session ends.

The bot runs in a background task, as Pipecat's runner runs it. Its ending is a reason like any
other (the first reason wins): returning after the session connected is the pipeline finishing
(or its idle timeout); raising, or returning before the session ever connected, is a broken bot,
reported with the file, its last line the exception went through, and the exception (or, for a bot
that returned, the last warning or error it logged: why it gave up is usually there). Whatever ends
the session for the host's own reasons (peer gone, max duration, a signal), `stop()` cancels the
user's workers and waits a bounded time, then cancels the task, so the process exits within
seconds even mid-utterance. The messages name what ran: `bot()`, or `main()` for a script started
from its main() (bot/entry_shapes.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from bot import tracing
from bot.entry_shapes import WrongSession
from bot.lifecycle import EndReason, SessionLifecycle
from bot.user_bot import UserBot, describe, raised_where
from bot.vendor_end import VendorEnd
from bot.watch import SessionWatch

if TYPE_CHECKING:
    from loguru import Message, Record

STOP_GRACE_SECONDS = 2.0
MAX_LINE = 300  # a detail travels in the session's answer and timeline: one line, bounded


class LastWarning:
    """The last warning or error the user's code (or Pipecat under it) logged while `bot()` ran, the
    host's own lines left out: a bot that returns early usually said why just before."""

    def __init__(self) -> None:
        self.line = ""

    @staticmethod
    def theirs(record: Record) -> bool:
        name = record["name"] or ""
        return name != "bot" and not name.startswith("bot.")

    def keep(self, message: Message) -> None:
        text = " ".join(str(message).split())
        self.line = text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


class UserBotSession:
    def __init__(self, user_bot: UserBot, lifecycle: SessionLifecycle, watch: SessionWatch) -> None:
        self.user_bot = user_bot
        self.lifecycle = lifecycle
        self.watch = watch
        self.connected = False  # set by the mode: the peer connected / the bot joined its room
        self._task: asyncio.Task[None] | None = None
        watch.on_idle_timeout = self._idle  # before the worker cancels itself and the peer goes
        watch.on_transport_failed = self._transport_failed
        watch.on_vendor_end = self._vendor_ended

    def _vendor_ended(self, end: VendorEnd) -> None:
        # The caller has heard that the assistant is gone (bot/vendor_goodbye.py): nothing more can be said.
        self.lifecycle.end(EndReason.VENDOR_ENDED, end.detail)

    def _transport_failed(self, detail: str) -> None:
        # The bot built a transport that cannot run (a Daily room of None: the detail says where the
        # room is): the bot's fault, reported as its failure now rather than a join deadline later.
        self.lifecycle.end(EndReason.BOT_FAILED, f"{self.user_bot.path}: {detail}")

    async def _idle(self) -> None:
        self.lifecycle.end(EndReason.IDLE_TIMEOUT)

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self, runner_args: object) -> None:
        self._task = asyncio.create_task(self._run(runner_args), name="user-bot")

    async def _run(self, runner_args: object) -> None:
        where, entry = str(self.user_bot.path), self.user_bot.entry
        last_warning = LastWarning()
        sink = logger.add(last_warning.keep, level="WARNING", filter=last_warning.theirs, format="{message}")
        try:
            with tracing.SESSION.current():  # the user's Pipecat spans join the session's trace
                await self.user_bot.bot(runner_args)
        except WrongSession as exc:  # an entry shape given a transport it cannot take: the way out, no traceback
            self.lifecycle.end(EndReason.BOT_FAILED, f"{where}: {exc}")
            return
        # The user's crash ends the session and is reported, never hangs it; a SystemExit too (a
        # script's argparse meeting arguments it does not know), which would otherwise stop the loop.
        except (Exception, SystemExit) as exc:
            logger.opt(exception=exc).error(f"{where}: {entry} raised")
            self.lifecycle.end(EndReason.BOT_FAILED,
                               f"{raised_where(self.user_bot.path, exc)}: {entry} raised {describe(exc)}")
            return
        finally:
            logger.remove(sink)
        if not self.connected:
            said = f", after logging: {last_warning.line}" if last_warning.line else " (it logged no warning or error)"
            self.lifecycle.end(EndReason.BOT_FAILED, f"{where}: {entry} returned before the session connected{said}")
        else:
            self.lifecycle.end(EndReason.PIPELINE_FINISHED)

    async def stop(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        # A worker still connecting can hold its cancel until the connection gives up: bounded.
        cancelling = asyncio.create_task(self.watch.cancel_workers(self.lifecycle.detail or "session ended"))
        await asyncio.wait([task], timeout=STOP_GRACE_SECONDS)
        if not task.done():
            # E.g. a Daily join still waiting on the network, or a bot that ignores its worker's
            # cancellation: cancel it, and leave the rest to the bounded loop shutdown (bot.shutdown).
            logger.warning(f"{self.user_bot.entry} did not return within {STOP_GRACE_SECONDS:g}s of the session's end; "
                           "cancelling it")
            task.cancel()
            await asyncio.wait([task], timeout=0.5)
        cancelling.cancel()

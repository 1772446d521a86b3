"""Why a session ends, and the exit code each reason maps to.

Several things race to end a session (peer gone, idle, wall-clock cap, a signal, a failed join):
the first reason wins and later ones are ignored, so the exit code tells the one that mattered.
"""

from __future__ import annotations

import asyncio
import enum
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loguru import logger


class EndReason(enum.StrEnum):
    PEER_DISCONNECTED = "peer_disconnected"  # webrtc: the peer closed the connection
    BOT_CLOSED = "bot_closed"  # webrtc: the bot's own code closed it (its transport's disconnect, its pipeline's end)
    CONNECTION_LOST = "connection_lost"  # webrtc: its ICE consent expired, no check answered (bot/ice_consent.py)
    BOT_BLOCKED = "bot_blocked"  # webrtc: consent expired while the bot's own code blocked the loop (bot/own_block.py)
    PARTICIPANT_LEFT = "participant_left"  # daily: the user left the room
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    SIGNAL = "signal"  # SIGTERM / SIGINT: graceful stop by the machines provider or a human
    PIPELINE_FINISHED = "pipeline_finished"  # the pipeline ended on its own (e.g. an EndFrame)
    CONNECT_TIMEOUT = "connect_timeout"  # nobody connected in time
    CONNECT_FAILED = "connect_failed"  # webrtc: the peer's connection closed before it was up
    JOIN_FAILED = "join_failed"  # daily: the room refused us or could not be reached
    ERROR = "error"  # an unexpected failure inside the host
    BOT_FAILED = "bot_failed"  # the user's bot file is broken: import, `bot`, bot() raised or returned at once
    CHANNEL_LOST = "channel_lost"  # a reserve bot lost (or never got) its channel to the dispatcher
    RESERVE_EXPIRED = "reserve_expired"  # a reserve bot idle past BOT_MAX_IDLE_SECONDS: retired
    VENDOR_ENDED = "vendor_ended"  # a converged bot's vendor ended its session: the caller was told (bot/vendor_end.py)

    @property
    def exit_code(self) -> int:
        if self in (EndReason.CONNECT_TIMEOUT, EndReason.CONNECT_FAILED, EndReason.JOIN_FAILED, EndReason.CHANNEL_LOST):
            return EXIT_CANNOT_CONNECT
        if self is EndReason.ERROR:
            return EXIT_ERROR
        if self is EndReason.BOT_FAILED:
            return EXIT_BOT_FAILED
        return EXIT_ENDED


EXIT_ENDED = 0
EXIT_ERROR = 1
# 2 (usage/config error) is bot.config.EXIT_USAGE: it is decided before any session exists.
EXIT_CANNOT_CONNECT = 3
EXIT_BOT_FAILED = 4  # the `ended` event's detail names the bot file and the exception


_signal_during_start_up: str | None = None


def remember_signals_during_start_up() -> None:
    """A SIGTERM/SIGINT that arrives while the bot imports (~1 s) must still end it gracefully.

    Without this the default handlers would kill it (exit -15) or raise KeyboardInterrupt
    mid-import; instead the signal is remembered and ends the session as soon as it exists.
    """

    def remember(signum: int, frame: object) -> None:
        global _signal_during_start_up
        _signal_during_start_up = signal.Signals(signum).name

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, remember)


class SessionLifecycle:
    """Collects the first end reason and lets the main task wait for it."""

    def __init__(self) -> None:
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self.detail: str | None = None
        self._timers: list[asyncio.TimerHandle] = []

    @property
    def ended(self) -> bool:
        return self._ended.done()

    def end(self, reason: EndReason, detail: str | None = None) -> None:
        if self._ended.done():
            return
        logger.info(f"session ending: {reason}" + (f" ({detail})" if detail else ""))
        self.detail = detail
        self._ended.set_result(reason)

    @property
    def reason(self) -> EndReason:
        return self._ended.result()

    async def wait(self) -> EndReason:
        return await asyncio.shield(self._ended)

    def end_after(
        self, seconds: float, reason: EndReason, detail: str | Callable[[], str] | None = None
    ) -> asyncio.TimerHandle:
        """Ends the session after `seconds` unless the returned handle is cancelled first (a callable
        `detail` is asked then: what went wrong meanwhile)."""

        def end() -> None:
            self.end(reason, detail() if callable(detail) else detail)

        handle = asyncio.get_running_loop().call_later(seconds, end)
        self._timers.append(handle)
        return handle

    @contextmanager
    def signals_end_session(self) -> Iterator[None]:
        """SIGTERM/SIGINT end the session gracefully instead of killing the process mid-teardown."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.end, EndReason.SIGNAL, signal.Signals(sig).name)
        if _signal_during_start_up:
            self.end(EndReason.SIGNAL, f"{_signal_during_start_up} during start-up")
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)  # restores the default action, which kills the process…
                signal.signal(sig, _already_ending)  # …mid-teardown: its `ended` report and its last spans
            for handle in self._timers:
                handle.cancel()


# After a stop signal that finds the session ended, the process has this long to finish its way out
# (the teardown's 1 s, the spans' 2 s flush, the exit's 1 s) before the kernel ends it (SIGALRM's
# default action): nothing else would, when the signal was a dead dispatcher's only one.
EXIT_DEADLINE_SECONDS = 5


def _already_ending(signum: int, frame: object) -> None:
    """A stop signal after the session ended: the process is already on its bounded way out.

    The dispatcher stops a session's machine when its call or peer is gone, which is often the very
    moment the bot ends by itself; the default action would kill it while it sends its `ended`
    report and flushes the session's spans (found losing `bot.session` under load). So the first
    signal sets a deadline (`EXIT_DEADLINE_SECONDS`), and a second one acts at once, as it always
    did (a developer's second Ctrl-C).
    """
    if signal.alarm(EXIT_DEADLINE_SECONDS):  # a deadline was set already: this is the second signal
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

"""Notices a recorded session's end, whatever ended it, and has its recording finished.

The bot's `ended` report is the usual end: the bot uploads its last part and says
`recording.finished` before it reports it, so the upload is completed at once. A bot that never
reports it (its process killed, its machine gone) is noticed when its channel closes: the session
is given `end_grace_seconds` to dial again (a dispatcher restart, a network blip: the call goes on),
and its machine is asked meanwhile: once the provider says it is no longer running, or the grace
runs out with no channel back, the parts it had uploaded are completed as a partial recording.
The bot's recording methods are answered here too, for the link's own session only. A bot whose
channel ends at a replica other than the one holding its recording has it handed over first
(recordings.py `here`), on its first request or at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import Report
from botchannel.recording import (
    METHOD_RECORDING_CONSENT,
    METHOD_RECORDING_FINISHED,
    METHOD_RECORDING_LOGS,
    METHOD_RECORDING_PART,
)
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.channel.bots import BotChannels, BotLink

MachineRunning = Callable[[str], Awaitable[bool]]
POLL_SECONDS = 1.0


class RecordingEnds:
    def __init__(self, recordings: SessionRecordings, channels: BotChannels, running: MachineRunning,
                 grace_seconds: float) -> None:
        self._recordings = recordings
        self._channels = channels
        self._running = running
        self._grace = grace_seconds
        self._watching: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()  # ends of recordings held at another replica

    def follow(self) -> None:
        self._channels.report_listeners.append(self._reported)
        self._channels.close_listeners.append(self._closed)
        self._channels.methods[METHOD_RECORDING_PART] = self._part
        self._channels.methods[METHOD_RECORDING_FINISHED] = self._finished
        self._channels.methods[METHOD_RECORDING_LOGS] = self._logs
        self._channels.methods[METHOD_RECORDING_CONSENT] = self._consent

    async def _part(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        assert link.session_id is not None  # the channel refuses a bot without a session
        return await self._recordings.part_url(link.session_id, params)

    async def _finished(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        assert link.session_id is not None
        return await self._recordings.bot_finished(link.session_id, params)

    async def _logs(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        assert link.session_id is not None
        return await self._recordings.bot_logs(link.session_id, params)

    async def _consent(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        assert link.session_id is not None
        return await self._recordings.consent(link.session_id, params)

    def _reported(self, link: BotLink, report: Report) -> None:
        if report.event != "ended":
            return
        why = f"the bot ended the session ({report.reason or 'ended'})"
        if self._recordings.recorded(report.session_id):
            self._recordings.finish_soon(report.session_id, why)
        elif self._recordings.settings.on:  # held at another replica, maybe: taken, then finished here
            task = asyncio.get_running_loop().create_task(self._recordings.finish_here(report.session_id, why),
                                                          name="recording-end-here")
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _closed(self, link: BotLink) -> None:
        session_id = link.session_id
        if session_id is None or not self._recordings.settings.on or session_id in self._watching:
            return
        task = asyncio.get_running_loop().create_task(self._watch(session_id), name="recording-end-watch")
        self._watching[session_id] = task
        task.add_done_callback(lambda _: self._watching.pop(session_id, None))

    async def _watch(self, session_id: str) -> None:
        if await self._recordings.here(session_id) is None:
            return  # not recorded (or held by a replica that did not hand it over: it finishes it)
        deadline = time.monotonic() + self._grace
        why = f"its bot's channel closed without its end and did not come back within {self._grace:g}s"
        while time.monotonic() < deadline:
            if self._channels.link_for(session_id) is not None:
                return  # dialled again: the session goes on
            if not self._recordings.recorded(session_id):
                return  # finished another way
            with contextlib.suppress(Exception):  # a provider that does not answer: the grace decides
                if not await self._running(session_id):
                    why = "its machine ended without the bot's end (killed or lost)"
                    break
            await asyncio.sleep(POLL_SECONDS)
        if self._channels.link_for(session_id) is None:
            self._recordings.finish_soon(session_id, why)

    async def aclose(self) -> None:
        for task in [*self._watching.values(), *self._ending]:
            task.cancel()

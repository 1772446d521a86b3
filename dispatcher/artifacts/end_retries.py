"""A session's end asked again while the store fails: with backoff for FINISH_DEADLINE_SECONDS, what
it still has to write held meanwhile (finishing.py goes on from where it stopped), then left to the
orphan sweep, which tries it again every 10 minutes with everything this replica holds of it. Each
failure is in the report's errors and in `GET /status`, and said once on the session's timeline
(`recording_delayed`); a session left is said too (`recording_unfinished`). Left sessions are
bounded in number and in the bytes they hold: past that the oldest are let go (their parts stay
in the store, for the sweep)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dispatcher.artifacts.finishing import Note, SessionEnds
from dispatcher.artifacts.session_recording import Recording
from dispatcher.artifacts.store import StoreError

log = logging.getLogger("dispatcher.artifacts")
FINISH_DEADLINE_SECONDS = 300.0  # a session's end retried this long while the store fails, then left to the sweep
FIRST_RETRY_SECONDS, LAST_RETRY_SECONDS = 0.5, 15.0  # the backoff between those tries
MAX_LEFT = 1_000  # sessions whose end waits on the store, held in one replica
MAX_LEFT_BYTES = 64 * 1024**2  # and the objects they still have to write, in all
MAX_REMEMBERED = 10_000  # the sessions whose end this replica wrote last
LEFT = "the store failed as the session ended and still did not take its end after {seconds:g}s of retries: " \
       "its recording's parts are kept in their upload, and this dispatcher tries again at each orphan sweep " \
       "(every 10 minutes); if it stops first, another completes the upload"


class EndRetries:
    def __init__(self, ends: SessionEnds, note: Note, deadline_seconds: float = FINISH_DEADLINE_SECONDS) -> None:
        self._ends = ends
        self._note = note
        self.deadline_seconds = deadline_seconds
        self.failure: str | None = None  # the store's last failure at a session's end, until one is written whole
        self.left: dict[str, tuple[Recording, str]] = {}  # ended, its end left to the sweep: (it, why it ended)
        self._ended_here: dict[str, None] = {}  # the last MAX_REMEMBERED whose end this replica wrote

    def wrote(self, session_id: str) -> bool:
        """Whether this replica wrote the session's end (its timeline's last event may still be on its way)."""
        return session_id in self._ended_here

    async def finished(self, recording: Recording, why: str) -> dict[str, Any] | None:
        """Its end written (the report), asked again while the store fails (an adopted upload once: the
        next sweep takes it up again); None when nothing is kept here, or when it was left to the sweep."""
        deadline = time.monotonic() + (0.0 if recording.adopted else self.deadline_seconds)
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                report = await self._ends.finished(recording, why)
            except StoreError as exc:
                self._failed(recording, exc)
                if time.monotonic() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAST_RETRY_SECONDS)
                continue
            self._written(recording.session_id)
            return report
        if not recording.adopted:
            self._leave(recording, why)
        return None

    async def finish_left(self) -> int:
        """Tries once more the ends left while the store failed (the orphan sweep calls it); how many were written."""
        written = 0
        for session_id, (recording, why) in list(self.left.items()):
            try:
                await self._ends.finished(recording, why)
            except StoreError as exc:
                self._failed(recording, exc)
                continue
            self.left.pop(session_id, None)
            self._written(session_id)
            written += 1
        return written

    def _written(self, session_id: str) -> None:
        self.failure = None  # the store took a whole end again
        self._ended_here[session_id] = None
        while len(self._ended_here) > MAX_REMEMBERED:
            del self._ended_here[next(iter(self._ended_here))]

    def _failed(self, recording: Recording, exc: StoreError) -> None:
        self.failure = str(exc)  # the store's words: the log's and the admin's status, never a client's
        log.warning("session %s: the store failed as it ended: %s", recording.session_id, exc)
        if exc.client_text not in recording.errors:
            recording.errors.append(exc.client_text)
        if not recording.delayed and not recording.adopted:
            recording.delayed = True
            self._note(recording.session_id, "recording_delayed", reason=f"the store failed as the session ended "
                       f"({exc.client_text}): retrying for up to {self.deadline_seconds:g}s; nothing uploaded is "
                       "dropped", code=exc.reason)

    def _leave(self, recording: Recording, why: str) -> None:
        """Its end left to the sweep (still recorded, so not erased before it is written)."""
        self.left[recording.session_id] = (recording, why)
        self._note(recording.session_id, "recording_unfinished", reason=LEFT.format(seconds=self.deadline_seconds))
        log.error("session %s: %s (%s)", recording.session_id, LEFT.format(seconds=self.deadline_seconds),
                  self.failure)
        while len(self.left) > MAX_LEFT or sum(r.pending_bytes() for r, _ in self.left.values()) > MAX_LEFT_BYTES:
            dropped = next(iter(self.left))
            self.left.pop(dropped)
            log.error("session %s: its end was let go (more sessions wait on the store than %d, or %d bytes): "
                      "its transcript, logs and report are lost; its upload is completed by the orphan sweep",
                      dropped, MAX_LEFT, MAX_LEFT_BYTES)

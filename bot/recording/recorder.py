"""The session's recorder: the tap's frames → the wall clock → WAV parts → the dispatcher's store.

The tap hands each frame (audio, and the frames of the turns) to `offer`/`turn`, which never wait:
a bounded queue (`QUEUE_FRAMES`, ~5 s of both sides in 20 ms frames) takes it, or, when the writer
has fallen that far behind, the frame is dropped, counted and the recording marked degraded; the
audio itself is never delayed. The writer task converts each frame to the recording's rate (mono
per side; Pipecat's own stream resampler when the transport's rate differs: 8 kHz carrier audio
recorded at 16 kHz, or a 24 kHz TTS), lays it on the call's clock (clock.py: the caller's audio
where it was heard, a backlog handed over at once included, the bot's where it was played), hands
the stereo stream out `HOLD_SECONDS` behind real time (so a frame that arrives a little late still
lands where it belongs; nothing while a backlog of the caller's is still arriving: catching_up.py),
and uploads the part still filling every `checkpoint_seconds`. The turns
are timed on the same clock (timing.py). `finish` (the session's end, before the bot reports
`ended`) hands out everything up to then, uploads the last part, and hands the dispatcher the bot's
last log lines (bot/log_tail.py) and its transcript.
The plan says what is kept: no audio (nothing is uploaded, the turns are still heard), no turns,
and, for a `consent` session, only what happened on the call's clock after the announcement ended
(`consented`): the clock runs from the call's start, and audio and turns from before that instant
are dropped as they are handed out, whenever their frames reached the recorder. The turns are
redacted (redaction.py) before they leave the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from loguru import logger
from pipecat.processors.frame_processor import FrameDirection

from bot.log_tail import TAIL, LogTail
from bot.recording.catching_up import CatchingUp
from bot.recording.clock import TwoTrackClock
from bot.recording.parts import PartCutter, PartUpload
from bot.recording.redaction import Redact, RedactionError, redacted_within
from bot.recording.tap import BOT, CALLER, RecordingTap
from bot.recording.timing import TurnTiming
from bot.recording.turns import TurnLog
from bot.recording.uploader import Ask, PartUploader
from botchannel.contract import RequestFailed
from botchannel.recording import (
    LOG_CHUNK_BYTES,
    METHOD_RECORDING_FINISHED,
    METHOD_RECORDING_LOGS,
    RecordingPlan,
    recording_seconds,
    wav_header,
)

QUEUE_FRAMES = 512
TAKE_EVERY_SECONDS = 0.5
HOLD_SECONDS = 1.0  # a caller's stream held up this long (a loaded bot, the network) is still laid end to end
FINISH_SECONDS = 10.0  # the last part's upload, at the session's end
LOGS_SECONDS = 5.0  # the bot's log lines, handed over at the end (a few requests of LOG_CHUNK_BYTES)
TRANSCRIPT_BYTES = 200_000  # the transcript rides in `recording.finished`: within the channel's frame (256 KB)
TURN = -1  # a queued turn frame, beside the sides' audio
LATE_SECONDS = 0.1  # the bot's audio laid later than it was played by more: the recording is marked degraded
OVERDUE_SECONDS = 1.0  # a take waits for the queue to empty (a backlog laid first) at most this long


def fitted(lines: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The first lines whose JSON fits in `budget` bytes."""
    kept, used = [], 0
    for line in lines:
        used += len(json.dumps(line)) + 2
        if used > budget:
            break
        kept.append(line)
    return kept


class Recorder:
    def __init__(self, plan: RecordingPlan, ask: Ask, base_url: str,
                 clock: Callable[[], float] = time.monotonic, logs: LogTail = TAIL,
                 redact: Redact | None = None, transcript_why: str | None = None) -> None:
        self.plan = plan
        self._logs = logs
        self._redact = redact
        self._transcript_why = transcript_why  # the turns will not be kept, and why (a hook that cannot be found)
        self._consent_at: float | None = None if plan.consent else -1.0  # monotonic: the announcement's end
        self._withheld = False
        self._ask = ask
        self._now = clock
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self._clock = TwoTrackClock(plan.sample_rate)
        self._cutter = PartCutter(plan.part_bytes, wav_header(plan.sample_rate))
        self._uploader = PartUploader(ask, base_url, self._mark)
        self._resamplers: dict[tuple[int, int], Any] = {}
        self._closed = False
        self.degraded: list[str] = []
        self.dropped = 0
        self.turns = TurnLog()
        self._timing = TurnTiming(self.turns, self._clock)
        self._catching_up = CatchingUp(self._clock, clock)
        self.tap = RecordingTap(self)
        self._writer = asyncio.create_task(self._write(), name="recording-writer")
        self._preparing = asyncio.create_task(self._prepare() if plan.audio else asyncio.sleep(0),
                                              name="recording-prepare")

    def withhold(self, why: str) -> None:
        """Nothing of the session is kept (its announcement cannot be played): the report says why."""
        self._withheld = True
        self._transcript_why = why
        self._mark(why)

    def consented(self) -> None:
        """The announcement has played: the call is kept from this instant on its clock."""
        if self._consent_at is None:
            self._consent_at = self._now()

    def offer(self, side: int, audio: bytes, sample_rate: int, channels: int, seen_at: float) -> None:
        """A frame from the tap (never waits, never raises)."""
        if self._closed or self._withheld or not audio or sample_rate <= 0 or channels <= 0:
            return
        # The caller's frame was heard before it arrived; the bot's is played from when it was written.
        start = seen_at - len(audio) / (2 * channels * sample_rate) if side == CALLER else seen_at
        self._put((side, audio, sample_rate, channels, start))

    def turn(self, frame: object, source: object, direction: FrameDirection, seen_at: float) -> None:
        """A frame of the call's turns (never waits): timed on the call's clock by the writer, in order."""
        if not self._closed and not self._withheld and self.plan.transcript:
            self._put((TURN, frame, source, direction, seen_at))

    def _put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1:
                self._mark("the writer fell behind: frames dropped")

    def _mark(self, why: str) -> None:
        if why not in self.degraded and len(self.degraded) < 10:
            logger.warning(f"recording degraded: {why}")
            self.degraded.append(why)

    async def _prepare(self) -> None:
        try:
            await self._uploader.prepare()
        except RequestFailed as exc:
            logger.warning(f"recording: the dispatcher cannot take it ({exc.code}: {exc.message})")

    def _elapsed(self) -> float | None:
        """Seconds on the call's clock now; None before its first audio."""
        return None if self._clock.origin is None else self._clock.at(self._now())

    def _kept_from(self) -> float | None:
        """Seconds on the call's clock the recording keeps from; None while nothing is kept."""
        if self._withheld or self._consent_at is None or self._clock.origin is None:
            return None
        if self._timing.kept_from is None:  # fixed once, on the clock as it stands then
            self._timing.kept_from = max(0.0, self._clock.at(self._consent_at))
        return self._timing.kept_from

    async def _write(self) -> None:
        next_take = next_checkpoint = 0.0
        while True:
            try:  # in this task, not wait_for's: a cancel at the end leaves the frame queued for `finish`
                async with asyncio.timeout(TAKE_EVERY_SECONDS):
                    item = await self._queue.get()
            except TimeoutError:
                item = None
            try:
                if item is not None:
                    await self._handle(item)
                elapsed = self._elapsed()
                if elapsed is None:
                    continue
                # A take waits while frames are queued: a backlog is laid (and the clock set by it) first.
                if elapsed >= next_take and (self._queue.empty() or elapsed >= next_take + OVERDUE_SECONDS):
                    if not self._catching_up.holds():  # a backlog still arriving: the call's start still moves
                        self._take(elapsed - HOLD_SECONDS)
                    next_take = elapsed + TAKE_EVERY_SECONDS
                if elapsed >= next_checkpoint and self._kept_from() is not None:
                    # The cutter holds the WAV header from the start: a plan that keeps no audio sends none of it.
                    if next_checkpoint and self.plan.audio and (part := self._cutter.checkpoint()) is not None:
                        self._uploader.submit(part)
                    next_checkpoint = elapsed + self.plan.checkpoint_seconds
            except Exception as exc:  # a frame it cannot take: that frame lost, the recording goes on
                logger.opt(exception=exc).warning("recording: a frame could not be written")
                self._mark(f"a frame could not be written ({type(exc).__name__})")

    async def _handle(self, item: tuple[Any, ...]) -> None:
        if item[0] != TURN:
            await self._place(*item)
            return
        self._kept_from()
        try:
            self._timing.heard(*item[1:])
        except Exception:  # a transcript line lost, never the call
            logger.exception("recording: a turn frame could not be read")

    async def _place(self, side: int, audio: bytes, rate: int, channels: int, start: float) -> None:
        samples = np.frombuffer(audio[: len(audio) - len(audio) % (2 * channels)], dtype="<i2")
        if channels > 1:
            samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
        if rate != self.plan.sample_rate:
            samples = np.frombuffer(await self._resampled(side, rate, samples.tobytes()), dtype="<i2")
        placed = self._clock.add(side, samples, start)
        self._timing.follow_origin()  # a caller's frame may have moved the call's start
        if placed is None:
            self._mark(f"{'bot' if side == BOT else 'caller'} audio too far ahead of real time: some dropped")
        elif side == BOT:
            self._kept_from()  # a greeting can be the call's first audio: the clock has its origin only now
            self._timing.bot_audio(placed)

    async def _resampled(self, side: int, rate: int, audio: bytes) -> bytes:
        from pipecat.audio.utils import create_stream_resampler

        resampler = self._resamplers.get((side, rate))
        if resampler is None:
            resampler = self._resamplers[(side, rate)] = create_stream_resampler()
        out: bytes = await resampler.resample(audio, rate, self.plan.sample_rate)
        return out

    def _take(self, until: float) -> None:
        """Hands the clock's stereo PCM out up to `until`, less what is not kept (before consent)."""
        first = self._clock.emitted
        pcm = self._clock.take_until(until)
        kept = self._kept_from()
        if not pcm or not self.plan.audio or kept is None:
            return
        skip = round(kept * self.plan.sample_rate) - first
        self._emit(pcm[4 * skip:] if skip > 0 else pcm)

    def _emit(self, pcm: bytes) -> None:
        for part in self._cutter.write(pcm):
            self._uploader.submit(part)

    async def _hand_over_logs(self) -> None:
        """The bot's last log lines (bot/log_tail.py), in as many requests as they take, within
        `LOGS_SECONDS` in all: the session's end waits on them no longer than that. They follow the
        transcript's policy (a service's debug lines can quote the call): none when it keeps no
        transcript, withholds it, or was never consented to; each message through the team's hook."""
        if not self.plan.transcript or self._transcript_why is not None or self._consent_at is None:
            return
        deadline = self._now() + LOGS_SECONDS
        for lines in self._logs.chunks(LOG_CHUNK_BYTES):
            left = deadline - self._now()
            if left <= 0:
                break
            if self._redact is not None:
                try:
                    texts = await redacted_within([{"text": line["message"]} for line in lines], self._redact)
                except RedactionError as exc:
                    logger.warning(f"recording: {exc} (nor the bot's log lines)")
                    break
                lines = [{**line, "message": text["text"]} for line, text in zip(lines, texts, strict=True)]
            try:
                await self._ask(METHOD_RECORDING_LOGS, {"lines": lines, "dropped": self._logs.dropped}, left)
            except (RequestFailed, TimeoutError):  # a dispatcher without them, or one that is slow: the logs go
                break

    async def _kept_turns(self, lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        """The turns as they may leave the bot (redacted), or none and why."""
        if not self.plan.transcript:
            return [], None
        if self._transcript_why is not None:
            return [], self._transcript_why
        if self._redact is None:
            return lines, None
        try:
            # Fitted again: what the hook returned may be longer than what it was given.
            return fitted(await redacted_within(lines, self._redact), TRANSCRIPT_BYTES), None
        except RedactionError as exc:
            logger.warning(f"recording: {exc}")
            return [], str(exc)

    async def finish(self, timeout: float = FINISH_SECONDS) -> dict[str, Any]:
        """Ends the recording at this moment: the rest written and uploaded, the dispatcher told."""
        self._closed = True
        end = self._elapsed()
        self._writer.cancel()
        self._preparing.cancel()
        await asyncio.gather(self._writer, self._preparing, return_exceptions=True)
        while not self._queue.empty():
            await self._handle(self._queue.get_nowait())
        last: PartUpload | None = None
        self._timing.close(end or 0.0)
        recorded = end is not None and self.plan.audio and self._kept_from() is not None
        if recorded and end is not None:
            self._take(end)
            last = self._cutter.last()
        if last is not None:
            self._uploader.submit(last)
            if not await self._uploader.drain(timeout):
                self._mark("the last parts were still uploading at the end")
        if self._clock.late > LATE_SECONDS:  # the recording does not have the bot where the caller heard it
            self._mark(f"the bot's audio reached the writer after its moment was written: laid up to "
                       f"{self._clock.late:.2f} s late")
        stats = {
            "parts": self._cutter.parts if recorded else 0,
            "bytes": self._cutter.total if recorded else 0,
            "seconds": round(recording_seconds(self._cutter.total, self.plan.sample_rate), 3) if recorded else 0.0,
            "degraded": list(self.degraded),
            "dropped_frames": self.dropped,
            "upload_errors": self._uploader.errors[-5:],
        }
        transcript = fitted(self.turns.lines, TRANSCRIPT_BYTES)
        stats["transcript_dropped"] = self.turns.dropped + len(self.turns.lines) - len(transcript)
        await self._hand_over_logs()
        stats["transcript"], why = await self._kept_turns(transcript)
        if why is not None:
            stats["transcript_why"] = why
        with contextlib.suppress(RequestFailed):
            await self._ask(METHOD_RECORDING_FINISHED, stats, 5.0)
        await self._uploader.close()
        return stats

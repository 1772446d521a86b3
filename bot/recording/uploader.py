"""Puts the recording's parts where the dispatcher says, one at a time, off the audio path.

Each part's URL comes from the dispatcher (`recording.part` over the channel): short-lived, for that
part of that session's upload alone; a URL is asked again when it is about to expire. The bot holds
no credential of the store. A newer upload of a part that is still waiting replaces the older one
(checkpoints of a filling part coalesce); full parts are never replaced, and if more than
`MAX_WAITING_FULL` wait (the network is too slow for the audio), the oldest is dropped and the
recording is marked degraded: memory stays bounded, audio is never delayed. Each PUT is tried
`ATTEMPTS` times with a backoff and a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp
from loguru import logger

from bot.channel_tls import UntrustedChannel, ca_file, channel_context
from bot.recording.parts import PartUpload
from botchannel.contract import RequestFailed
from botchannel.recording import METHOD_RECORDING_PART

Ask = Callable[[str, Mapping[str, Any], float], Awaitable[Mapping[str, Any]]]

MAX_WAITING_FULL = 2
ATTEMPTS = 3
BACKOFF_SECONDS = (0.5, 2.0)
PUT_TIMEOUT_SECONDS = 30.0
ASK_TIMEOUT_SECONDS = 10.0
URL_MARGIN_SECONDS = 15.0  # a URL this close to its expiry is asked again
PIECE_BYTES = 256 * 1024  # of a part sent per step of the event loop


def http_base(channel_url: str) -> str:
    """The dispatcher's HTTP address from the channel's (`ws://host:port/bots/channel`)."""
    scheme, rest = channel_url.split("://", 1)
    return {"ws": "http", "wss": "https"}.get(scheme, scheme) + "://" + rest.split("/", 1)[0] + "/"


class PartUploader:
    def __init__(self, ask: Ask, base_url: str, on_degraded: Callable[[str], None]) -> None:
        self._ask = ask
        self._base = base_url
        self._degraded = on_degraded
        self._waiting: list[PartUpload] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._urls: dict[int, tuple[str, float]] = {}  # part → (url, expires at, monotonic)
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.uploaded: dict[int, int] = {}  # part → bytes of its newest upload that landed
        self.errors: list[str] = []

    def submit(self, part: PartUpload) -> None:
        for index, waiting in enumerate(self._waiting):
            if waiting.number == part.number and not waiting.full:
                self._waiting[index] = part
                break
        else:
            self._waiting.append(part)
        full = [waiting for waiting in self._waiting if waiting.full]
        if len(full) > MAX_WAITING_FULL:
            self._waiting.remove(full[0])
            self._degraded(f"upload behind: part {full[0].number} dropped")
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="recording-upload")

    async def prepare(self) -> None:
        """Asks part 1's URL ahead of its upload: the dispatcher opens the upload (and says now if it cannot)."""
        await self._url(1)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                part = self._waiting.pop(0)
                await self._put(part)
            self._idle.set()

    async def _put(self, part: PartUpload) -> None:
        for attempt in range(ATTEMPTS):
            try:
                url = await self._url(part.number)
                if self._http is None:
                    self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PUT_TIMEOUT_SECONDS))
                # The dispatcher's own parts route is checked as the channel is; a store's URL, as any HTTPS.
                own = channel_context(url, ca_file()) if url.startswith(self._base) else None
                async with self._http.put(url, data=_pieces(part.data), headers={"Content-Length": str(len(part.data))},
                                          ssl=own if own is not None else True) as answer:
                    if answer.status < 300:
                        self.uploaded[part.number] = len(part.data)
                        return
                    why = f"HTTP {answer.status}"
                    if answer.status in (401, 403):
                        self._urls.pop(part.number, None)  # expired or refused: ask a new one
            except RequestFailed as exc:
                why = f"{exc.code}: {exc.message}"
                if exc.status < 500:
                    break  # the dispatcher said no: asking again changes nothing
            except (aiohttp.ClientError, TimeoutError, OSError, UntrustedChannel) as exc:
                why = type(exc).__name__
            if attempt < len(BACKOFF_SECONDS):
                await asyncio.sleep(BACKOFF_SECONDS[attempt])
        logger.warning(f"recording: part {part.number} not uploaded ({why})")
        self.errors.append(f"part {part.number}: {why}")
        if part.full:
            self._degraded(f"part {part.number} not uploaded: {why}")

    async def _url(self, number: int) -> str:
        known = self._urls.get(number)
        if known is not None and known[1] - URL_MARGIN_SECONDS > time.monotonic():
            return known[0]
        answer = await self._ask(METHOD_RECORDING_PART, {"part": number}, ASK_TIMEOUT_SECONDS)
        url, lifetime = answer.get("url"), answer.get("expires_in")
        if not isinstance(url, str) or not isinstance(lifetime, int | float):
            raise RequestFailed(502, "bad_answer", "the dispatcher's part URL answer has no url/expires_in")
        absolute = urljoin(self._base, url)
        self._urls[number] = (absolute, time.monotonic() + float(lifetime))
        return absolute

    async def drain(self, timeout: float) -> bool:
        """Waits for the waiting parts to be put; False at the deadline."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()


async def _pieces(data: memoryview) -> AsyncIterator[memoryview]:
    """A part's body, `PIECE_BYTES` per step of the event loop: sent whole, a 5 MiB part held the
    bot's loop for ~10 ms of CPU at once, delaying every frame behind it (docs/performance.md)."""
    for offset in range(0, len(data), PIECE_BYTES):
        yield data[offset:offset + PIECE_BYTES]
        await asyncio.sleep(0)

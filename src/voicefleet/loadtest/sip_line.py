"""A SIP call as the phone caller's line (phone_line.py): the call is placed by a process of its own
(sip_agent.py, PJSUA2), and this side speaks to it as the caller speaks to a carrier's stream, so
the caller's pacing, keys, timing and hang-up are the same code for every phone transport. `open()`
returns once the edge answered `200 OK` (its bot has joined), with the call's session id learnt from
the answer's `X-Voicefleet-Session-Id`; a final refusal (404: no trunk serves the number, 486, 503…)
raises SipRefused."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import numpy as np
from websockets.exceptions import ConnectionClosedOK

from voicefleet.loadtest.carrier_frames import CallIds, Framing, payload, pcm16
from voicefleet.loadtest.sip_eval_token import ENV
from voicefleet.loadtest.sip_uri import SESSION_HEADER, SipUri
from voicefleet.loadtest.within import within

STDERR_LINES = 20  # the agent's last words, for a failure's message
EXIT_SECONDS = 10.0  # the BYE's answer, then the agent's exit
MAX_LINE = 2**16

WAY = {404: "no trunk of the edge serves this number: check the URI's number against the edge's [[trunk]] numbers",
       403: "the edge does not allow this machine's address: add it to a trunk's sources",
       486: "the number's API key is over its rate or share: retry later",
       503: "the edge or its dispatcher cannot take the call now (full, draining, the bot not ready)",
       488: "the edge takes G.711 only",
       603: "the dispatcher refused the call's eval token (X-Voicefleet-Eval): is VOICEFLEET_API_KEY the "
            "number's key? the edge's log says why",
       408: "the edge did not answer: is it running at that address and port?",
       0: "check the URI's host and port"}


class SipRefused(ConnectionError):
    """The edge's final answer to the INVITE was not 200 OK."""

    def __init__(self, uri: str, status: int, reason: str, retry_after: int | None = None) -> None:
        way = WAY.get(status, "see the edge's log")
        again = "" if retry_after is None else f" (Retry-After: {retry_after} s)"
        said = f"answered {status} {reason}".strip() if status else f"was not called: {reason}"
        super().__init__(f"{uri} {said}{again}: {way}")
        self.status = status


class SipFraming(Framing):
    """The agent's lines: 20 ms of 16-bit PCM at 8 kHz a `media`, a `dtmf` a key, `bye` to hang up."""

    name: ClassVar[str] = "sip"

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        return []

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        return {"event": "media", "media": {"payload": payload(samples.astype("<i2").tobytes())}}

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        return {"event": "dtmf", "digit": digit}

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        return {"event": "bye"}

    def decode(self, raw: bytes, media: Any) -> np.ndarray:
        return pcm16(raw)


SIP_FRAMING = SipFraming()


class SipLine:
    """The agent's process, as the caller's stream: `send`, iterate what it hears, `close`."""

    def __init__(self, target: SipUri, *, answer_seconds: float, eval_token: str | None = None) -> None:
        """`eval_token`: sent as the INVITE's X-Voicefleet-Eval (sip_eval_token.py), through the agent's environment."""
        self.target = target
        self.answer_seconds = answer_seconds
        self.eval_token = eval_token
        self.session_id: str | None = None
        self.close_code: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._drain: asyncio.Task[None] | None = None

    async def open(self) -> SipLine:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicefleet.loadtest.sip_agent", self.target.uri,
            "--answer-seconds", str(self.answer_seconds), stdin=asyncio.subprocess.PIPE,
            env={**os.environ, ENV: self.eval_token} if self.eval_token else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=MAX_LINE)
        self._drain = asyncio.create_task(self._keep_stderr())
        try:
            async with asyncio.timeout(self.answer_seconds + EXIT_SECONDS):
                while True:
                    message = await self._next()
                    if message is None:
                        raise ConnectionError(f"the SIP caller ended before an answer: {self._last_words()}")
                    if message.get("event") == "answered":
                        self.session_id = message.get("session_id")
                        if not self.session_id:
                            raise ConnectionError(f"{self.target.uri} answered without {SESSION_HEADER}: the "
                                                  "call's session is unknown (an edge older than this command?)")
                        return self
                    if message.get("event") == "refused":
                        retry = message.get("retry_after")
                        raise SipRefused(self.target.uri, int(message.get("status") or 0),
                                         str(message.get("reason") or ""), retry if isinstance(retry, int) else None)
        except BaseException:
            await self.close()
            raise

    async def send(self, message: str) -> None:
        process = self._process
        if process is None or process.stdin is None or self.close_code is not None:
            raise ConnectionClosedOK(None, None)
        try:
            process.stdin.write(message.encode() + b"\n")
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise ConnectionClosedOK(None, None) from None

    async def __aiter__(self) -> AsyncIterator[str]:
        while (message := await self._next()) is not None:
            if message.get("event") == "media":
                yield json.dumps(message)
            elif message.get("event") == "ended":
                break
        self.close_code = 1000

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Hangs up (BYE, or CANCEL while it rings) and waits for the agent to exit; killed past EXIT_SECONDS."""
        process = self._process
        if process is None:
            return
        self.close_code = self.close_code or code
        if process.stdin is not None and not process.stdin.is_closing():
            with contextlib.suppress(OSError):
                process.stdin.write(b'{"event": "bye"}\n')
            process.stdin.close()
        try:  # what it still hears is read and dropped: a full pipe would stall its media clock, and its BYE
            await within(asyncio.gather(process.wait(), self._discard()), EXIT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)

    async def _next(self) -> dict[str, Any] | None:
        """The agent's next line, or None once it exited."""
        assert self._process is not None and self._process.stdout is not None
        while raw := await self._process.stdout.readline():
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                if isinstance(message, dict):
                    return message
        self.close_code = self.close_code or 1000
        return None

    async def _discard(self) -> None:
        while await self._next() is not None:
            pass

    async def _keep_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while raw := await self._process.stderr.readline():
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def _last_words(self) -> str:
        return " | ".join(line for line in self._stderr if line) or f"exit {self._process and self._process.returncode}"


def caller_missing() -> str | None:
    """Why this machine cannot place SIP calls (PJSUA2 not installed: it is the SIP edge's dependency
    group, not the command's), or None."""
    if importlib.util.find_spec("pjsua2") is None:
        return ("SIP calls are placed with PJSUA2, which is not installed here: install PyPI's pjsua2-python "
                "(in a checkout: uv sync --group sip)")
    return None

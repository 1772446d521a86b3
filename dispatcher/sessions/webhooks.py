"""Lifecycle webhooks: `session.started`, `session.ready`, `session.ended`, `session.failed`, signed
the Standard Webhooks way, delivered to `WEBHOOK_URL` in the background.

Each event of a session's timeline (dispatcher/sessions/timeline.py) that a team wants pushed is
POSTed as `{"type", "timestamp", "data": {"session_id", ...}}` with the scheme's headers:
`webhook-id` (`msg_<session id>_<type>`: the same at every replica and every retry, so a receiver
drops duplicates: delivery is at least once), `webhook-timestamp` (Unix seconds) and
`webhook-signature` (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, keyed with the
`whsec_` secret's bytes). A receiver verifies it with any Standard Webhooks library.

Nothing here delays a start: an event is queued without waiting (at most `WEBHOOK_MAX_QUEUE`; past
it, dropped and logged), two workers deliver, each attempt bounded by `WEBHOOK_TIMEOUT_SECONDS`,
an answer other than 2xx (or none) retried after 1, 2, 4, 8, 16 and 32 s, then given up and logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.settings import SettingsError, float_setting, int_setting

log = logging.getLogger("dispatcher.sessions.webhooks")
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]

RETRY_DELAYS_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
WORKERS = 2
SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's marker, not a secret)
# The timeline's events that are pushed, and the type each is pushed as.
PUSHED = {"claimed": "session.started", "launched": "session.started", "ready": "session.ready",
          "ended": "session.ended", "failed": "session.failed"}


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    key: bytes  # the secret's bytes (after `whsec_`, base64)
    timeout_seconds: float = 5.0
    max_queue: int = 1_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings | None:
        url = env.get("WEBHOOK_URL", "").strip()
        secret = env.get("WEBHOOK_SECRET", "").strip()
        if not url and not secret:
            return None
        if not (url and secret):
            raise SettingsError("WEBHOOK_URL and WEBHOOK_SECRET are set together or not at all")
        if not url.startswith(("https://", "http://")):
            raise SettingsError(f"WEBHOOK_URL={url!r} is not an http(s) URL")
        return cls(url, secret_key(secret), float_setting(env, "WEBHOOK_TIMEOUT_SECONDS", cls.timeout_seconds,
                                                           minimum=0.1),
                   int_setting(env, "WEBHOOK_MAX_QUEUE", cls.max_queue, minimum=1, maximum=100_000))


def secret_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 24:
        raise SettingsError("WEBHOOK_SECRET must be `whsec_` and at least 24 random bytes in base64")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class LifecycleWebhooks:
    def __init__(self, settings: WebhookSettings, read: Reader, client: HttpClient | None = None) -> None:
        self._settings = settings
        self._read = read  # the session's timeline: an ended session's duration is since its request
        self._client = client or HttpClient(timeout=settings.timeout_seconds)
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(settings.max_queue)
        self._workers: list[asyncio.Task[None]] = []
        self.delivered = 0
        self.dropped = 0

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: queues the events that are pushed, never waits."""
        kind = PUSHED.get(str(record.get("event")))
        if kind is None:
            return
        data = {"session_id": session_id, **{k: v for k, v in record.items() if k not in ("event",)}}
        try:
            self._queue.put_nowait((f"msg_{session_id}_{kind}", kind, data))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("session %s: webhook %s dropped (%d waiting)", session_id, kind, self._settings.max_queue)
            return
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"webhooks-{n}") for n in range(WORKERS)]

    async def _work(self) -> None:
        while True:
            message_id, kind, data = await self._queue.get()
            try:
                await self._deliver(message_id, kind, data)
            finally:
                self._queue.task_done()

    async def _deliver(self, message_id: str, kind: str, data: dict[str, Any]) -> None:
        if kind == "session.ended":
            data = {**data, "duration_seconds": await self._duration(data)}
        body = json.dumps({"type": kind, "timestamp": data.get("at"), "data": data}, separators=(",", ":")).encode()
        why = ""
        for delay in (*RETRY_DELAYS_SECONDS, None):
            now = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(now),
                       "webhook-signature": signature(self._settings.key, message_id, now, body)}
            try:
                answer = await self._client.request("POST", self._settings.url, content=body, headers=headers)
                if 200 <= answer.status_code < 300:
                    self.delivered += 1
                    return
                why = f"answered {answer.status_code}"
            except HttpError as exc:
                why = str(exc)
            if delay is None:
                break
            await asyncio.sleep(delay)
        log.warning("webhook %s (%s) not delivered after %d attempts: %s", message_id, kind,
                    len(RETRY_DELAYS_SECONDS) + 1, why)

    async def _duration(self, data: dict[str, Any]) -> float | None:
        try:
            events = await self._read(str(data["session_id"]))
        except Exception:  # the store: the event goes without its duration
            return None
        began = next((e.get("at") for e in events if e.get("event") == "requested"), None)
        ended = data.get("at")
        if isinstance(began, int | float) and isinstance(ended, int | float):
            return round(max(0.0, ended - began), 3)
        return None

    async def drained(self) -> None:
        """Waits until every queued event was delivered or given up (tests)."""
        await self._queue.join()

    async def aclose(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self._client.aclose()

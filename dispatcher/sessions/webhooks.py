"""Lifecycle webhooks: `session.started`, `session.ready`, `session.ended`, `session.failed`, signed
the Standard Webhooks way, delivered to `WEBHOOK_URL` in the background.

Each event of a session's timeline (dispatcher/sessions/timeline.py) that a team wants pushed is
POSTed as `{"type", "timestamp" (when it occurred, ISO 8601 UTC), "data": {"session_id", "at", ...}}`
with the scheme's headers: `webhook-id` (`msg_<session id>_<type>`: the same at every replica and
every retry, so a receiver drops duplicates: delivery is at least once), `webhook-timestamp` (Unix
seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, keyed with
the `whsec_` secret's bytes). A receiver verifies it with any Standard Webhooks library.

Nothing here delays a start: an event is written to the outbox in the background (with several
replicas the store's, dispatcher/sessions/webhook_outbox.py; at most `WEBHOOK_MAX_QUEUE` waiting,
past it dropped, logged and counted in `dropped`), and each replica's deliverer takes due events
from it, each attempt bounded by `WEBHOOK_TIMEOUT_SECONDS`, an answer other than 2xx (or none)
retried after 1, 2, 4, 8, 16 and 32 s, then given up, logged and counted in `given_up`. A redirect is
such an answer: never followed, so a signed event goes to `WEBHOOK_URL` alone. A replica
that dies leaves its events in the store, and another replica's deliverer takes them once their
lease ran out: delivery is at least once, across replicas.
An event in the store lives at most as long as its delivery may take (`keep_seconds`: the events
queued before it, its attempts and their waits, and a margin): one found waiting past that is
dropped, and the store's outbox expires when no event was written for that long. A SIP call's
`session.ended` whose edge has not told its end yet is put back until EDGE_END_WAIT_SECONDS past that end (`_put_off`).
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
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatcher.observability.log_text import shown
from dispatcher.observability.sip_end import awaits_edge_end, edge_end_deadline, sip_end_of
from dispatcher.observability.whatsapp_call import whatsapp_of
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.machine_end_grace import CLOSE_WAIT_SECONDS
from dispatcher.sessions.timeline import is_eval
from dispatcher.sessions.webhook_outbox import Entry, MemoryOutbox, Outbox
from dispatcher.settings import SettingsError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import OneTimeUse
from dispatcher.store.memory import LocalOnce
from voicefleet_settings.read import setting_float, setting_int, setting_text

log = logging.getLogger("dispatcher.sessions.webhooks")
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]

RETRY_DELAYS_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
BATCH = 16  # events taken (and tried at once) per look
POLL_SECONDS = 1.0  # how soon another replica's due events (a retry, a dead replica's) are taken
LEASE_MARGIN_SECONDS = 5.0  # past an attempt's timeout, before another replica may take the event
KEEP_MARGIN_SECONDS = 60.0  # past an event's delivery budget, before it is dropped (a store briefly away)
SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's marker, not a secret)
# The timeline's events that are pushed, and the type each is pushed as.
PUSHED = {"claimed": "session.started", "launched": "session.started", "ready": "session.ready",
          "ended": "session.ended", "failed": "session.failed", "transferred": "session.transferred",
          "recording_ready": "session.recording.ready", "recording_partial": "session.recording.partial"}

BOT_ENDS = ("ended", "failed")  # a session with either has had its end (or its failure) pushed
# `session.ended` is pushed once per session across replicas (a bot's late `ended` after its machine's
# end was pushed would be a second payload under the same webhook-id); kept as long as an event is.
ENDED_ONCE_SECONDS = 86_400.0
READ_TRIES = 3  # a timeline read for a machine's end, tried again before that end goes unpushed
READ_BACKOFF_SECONDS = 1.0  # doubled before each try again
EDGE_END_UNTIL = "edge_end_until"  # an entry's: when a SIP call's end stops waiting for its edge's (`_put_off`)


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    key: bytes  # the secret's bytes (after `whsec_`, base64)
    timeout_seconds: float = 5.0
    max_queue: int = 1_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings | None:
        url = setting_text(env, "WEBHOOK_URL")
        secret = setting_text(env, "WEBHOOK_SECRET")
        if not url and not secret:
            return None
        if not (url and secret):
            raise SettingsError("WEBHOOK_URL and WEBHOOK_SECRET are set together or not at all")
        if not url.startswith(("https://", "http://")):
            raise SettingsError(f"WEBHOOK_URL={url!r} is not an http(s) URL")
        return cls(url, secret_key(secret), setting_float(env, "WEBHOOK_TIMEOUT_SECONDS"),
                   setting_int(env, "WEBHOOK_MAX_QUEUE"))


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


def occurred(at: object) -> str | None:
    """The payload's `timestamp`, when the event occurred, in ISO 8601 (UTC, `Z`) as the Standard
    Webhooks specification's payload structure recommends (its examples: "2022-11-03T20:26:10.344522Z";
    https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#payload-structure).
    The `webhook-timestamp` header stays Unix seconds: that is the attempt's, and the scheme signs it."""
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        return None  # (an entry an earlier version queued with a bot's NaN: sent without a time, not failed for good)
    try:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):  # past the year 9999
        return None


def _refused(answer: HttpResponse) -> str:
    if 300 <= answer.status_code < 400:
        where = shown(answer.headers.get("location", ""), 200)
        return (f"answered {answer.status_code} to {where!r}: redirects are not followed, "
                "set WEBHOOK_URL to the final URL")
    return f"answered {answer.status_code}"


def _unsummed(kind: str, data: dict[str, Any]) -> bool:
    """A `session.ended` not yet given its duration, cost and calls' records (a retry keeps the first's)."""
    return kind == "session.ended" and "duration_seconds" not in data


def keep_seconds(settings: WebhookSettings) -> float:
    """The longest an event may take to be delivered or given up: the full queue ahead of it, taken
    `BATCH` at a time, each look up to a lease; its own attempts, each up to a lease; the waits
    between them; and a margin."""
    leases = math.ceil(settings.max_queue / BATCH) + len(RETRY_DELAYS_SECONDS) + 1
    return leases * (settings.timeout_seconds + LEASE_MARGIN_SECONDS) + sum(RETRY_DELAYS_SECONDS) + KEEP_MARGIN_SECONDS


class LifecycleWebhooks:
    def __init__(self, settings: WebhookSettings, read: Reader, outbox: Outbox,
                 client: HttpClient | None = None, costs: SessionCosts | None = None,
                 once: OneTimeUse | None = None) -> None:
        self._settings = settings
        self._read = read  # the session's timeline: an ended session's duration is since its request
        self._costs = costs  # an ended session's cost, from the same timeline (None: not priced)
        self._once = once or LocalOnce()  # which sessions' `session.ended` was pushed (the store's: every replica's)
        # Redirects not followed: a receiver (or whoever answers for its name) that answers 3xx must not
        # turn this deliverer into a POSTer of signed events to an address of its choosing (a metadata
        # endpoint, the store's host). A 3xx is a failed attempt, logged with where it pointed.
        # Spans name the receiver's host only: a webhook URL's path is often its secret (Slack's, Zapier's).
        self._client = client or HttpClient(timeout=settings.timeout_seconds, follow_redirects=False,
                                            path_traced=False)
        self._outbox = outbox
        self._local = MemoryOutbox()  # this replica's events while the store does not answer
        self._lease = settings.timeout_seconds + LEASE_MARGIN_SECONDS
        self._keep = keep_seconds(settings)
        self._puts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._deliverer: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0  # past WEBHOOK_MAX_QUEUE, never attempted
        self.given_up = 0  # not taken within the retries

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: hands the events that are pushed to the outbox, never waits (a machine's end,
        once its grace is over, comes through `machine_ended`)."""
        kind = PUSHED.get(str(record.get("event")))
        if kind is None:
            return
        data = {"session_id": session_id, **{k: v for k, v in record.items() if k not in ("event",)}}
        if kind == "session.ended":
            self._later(self._ended_once(session_id, data))
        else:
            self.push(f"msg_{session_id}_{kind}", kind, data)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to deliver with
            work.close()
            return
        self._puts.add(task)  # awaited at close, as the events' own writes are
        task.add_done_callback(self._puts.discard)

    async def _ended_once(self, session_id: str, data: dict[str, Any]) -> None:
        """`session.ended`, unless one was pushed for the session already (at any replica); a store
        that does not answer has it pushed all the same: twice is better than never."""
        try:
            first = await self._once.first_use(f"session.ended:{session_id}", ENDED_ONCE_SECONDS)
        except Exception as exc:
            log.warning("session %s: whether its end was pushed could not be read (%s): pushed", session_id,
                        type(exc).__name__)
            first = True
        if first:
            self.push(f"msg_{session_id}_session.ended", "session.ended", data)

    async def machine_ended(self, session_id: str, record: Mapping[str, Any]) -> None:
        """`session.ended` for a session whose machine ended without its bot's report (killed, lost), its grace
        over (sessions/machine_end_grace.py: here, or at the replica that swept it up after a close). A bot
        killed before its `ended` report still ends its session (docs/http-api.md)."""
        for attempt in range(READ_TRIES):
            try:
                events = await self._read(session_id)
                break
            except Exception as exc:  # the store: a bot's end may be in it; read again before giving up
                failure = exc
            await asyncio.sleep(READ_BACKOFF_SECONDS * 2 ** attempt)
        else:  # raised: a handed-over end is offered again (sessions/machine_end_grace.py), the mark refusing a twin
            log.warning("session %s: its machine's end not pushed (its timeline could not be read: %s)", session_id,
                        type(failure).__name__)
            raise failure
        if any(e.get("event") in BOT_ENDS for e in events):
            return
        data = {"session_id": session_id, "at": record.get("at"), "replica": record.get("replica"),
                "reason": "machine_ended", "state": record.get("state"), "detail": record.get("detail")}
        await self._ended_once(session_id, {k: v for k, v in data.items() if v is not None})

    def push(self, message_id: str, kind: str, data: dict[str, Any]) -> None:
        """Hands one event to the outbox (`release.rolled_back` too, which is no session's), never waits."""
        if len(self._puts) >= self._settings.max_queue:
            self._drop(message_id, f"{len(self._puts)} waiting to be written")
            return
        try:
            task = asyncio.get_running_loop().create_task(self._put(message_id, kind, data))
        except RuntimeError:  # no loop (a synchronous caller at shutdown): nothing to deliver with
            return
        self._puts.add(task)
        task.add_done_callback(self._puts.discard)
        if self._deliverer is None:
            self._deliverer = asyncio.get_running_loop().create_task(self._deliver_all(), name="webhooks")

    async def _put(self, message_id: str, kind: str, data: dict[str, Any]) -> None:
        now = time.time()
        entry = {"kind": kind, "data": data, "attempts": 0, "expires": now + self._keep}
        try:
            kept = await self._outbox.put(message_id, entry, now, self._settings.max_queue, self._keep)
        except StoreUnavailable:  # kept here until delivered; lost only if this replica dies first
            kept = await self._local.put(message_id, entry, now, self._settings.max_queue, self._keep)
        if not kept:
            self._drop(message_id, f"{self._settings.max_queue} waiting")
        self._wake.set()

    def _drop(self, message_id: str, why: str) -> None:
        self.dropped += 1
        log.warning("webhook %s dropped (%s)", message_id, why)

    async def _deliver_all(self) -> None:
        """Takes due events, this replica's and any other's whose lease ran out (its replica died),
        until closed; looks again at least every `POLL_SECONDS`."""
        while True:
            self._wake.clear()
            try:
                batch = await self._claimed()
                if batch:
                    await asyncio.gather(*(self._attempt(box, message_id, entry) for box, message_id, entry in batch))
                    continue
            except Exception as exc:  # a bad entry or a store error: the next look tries again
                log.warning("webhooks: delivering failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _claimed(self) -> list[tuple[Outbox, str, Entry]]:
        now = time.time()
        batch: list[tuple[Outbox, str, Entry]] = [
            (self._local, message_id, entry) for message_id, entry in await self._local.claim(now, self._lease, BATCH)
        ]
        try:
            claimed = await self._outbox.claim(now, self._lease, BATCH)
        except StoreUnavailable:
            return batch
        return batch + [(self._outbox, message_id, entry) for message_id, entry in claimed]

    async def _attempt(self, box: Outbox, message_id: str, entry: Entry) -> None:
        kind, data = str(entry["kind"]), dict(entry["data"])
        if isinstance(data.get("at"), float) and not math.isfinite(data["at"]):
            del data["at"]  # strict JSON has no NaN or Infinity for a receiver to parse
        if kind.startswith("session.") and ("eval" not in data or _unsummed(kind, data)):
            events = await self._events(data)
            if _unsummed(kind, data) and events is not None and await self._put_off(box, message_id, entry, events):
                return
            data.update(await self._from_timeline(kind, data, events))
        body = json.dumps({"type": kind, "timestamp": occurred(data.get("at")), "data": data},
                          separators=(",", ":")).encode()
        now = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(now),
                   "webhook-signature": signature(self._settings.key, message_id, now, body)}
        try:
            answer = await self._client.request("POST", self._settings.url, content=body, headers=headers)
            why = "" if 200 <= answer.status_code < 300 else _refused(answer)
        except HttpError as exc:
            why = str(exc)
        try:
            if not why:
                await box.done(message_id)
                self.delivered += 1
                return
            attempts = int(entry.get("attempts", 0)) + 1
            if attempts > len(RETRY_DELAYS_SECONDS):
                await box.done(message_id)
                self.given_up += 1
                log.warning("webhook %s (%s) not delivered after %d attempts: %s", message_id, kind, attempts, why)
                return
            retry = {**entry, "data": data, "attempts": attempts}
            await box.retry(message_id, retry, time.time() + RETRY_DELAYS_SECONDS[attempts - 1], self._keep)
        except StoreUnavailable:  # its lease runs out and it is tried again, here or elsewhere
            log.warning("webhook %s: the store did not answer after an attempt", message_id)

    async def _events(self, data: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The session's timeline; None when the store did not answer."""
        try:
            return await self._read(str(data["session_id"]))
        except Exception:  # the store: the event goes without its duration and cost
            return None

    async def _put_off(self, box: Outbox, message_id: str, entry: Entry, events: list[dict[str, Any]]) -> bool:
        """A SIP call's `session.ended` whose edge has not told its counted end yet (the bot's side ended first:
        the edge's BYE, and its count, follow the end) is put back in the outbox for the deliverer's next look,
        until it is told or its `edge_end_deadline` has passed (EDGE_END_WAIT_SECONDS past the session's `ended`,
        fixed at the first look and kept in the entry, for every replica); then it goes as it is. True when put
        back."""
        now = time.time()
        until = entry.get(EDGE_END_UNTIL)
        if not isinstance(until, int | float) or isinstance(until, bool) or not math.isfinite(until):
            until = edge_end_deadline(events, now)
        if now >= until or not awaits_edge_end(events):
            return False
        try:
            await box.retry(message_id, {**entry, EDGE_END_UNTIL: until}, min(until, now + POLL_SECONDS), self._keep)
        except StoreUnavailable:  # its lease runs out and it is looked at again, here or elsewhere
            log.warning("webhook %s: the store did not answer as it was put off for its SIP end", message_id)
        return True

    async def _from_timeline(self, kind: str, data: dict[str, Any],
                             events: list[dict[str, Any]] | None) -> dict[str, Any]:
        """What a session's event carries from its timeline: whether it is an eval's (`eval`), and an ended one's
        summary; kept in the entry, so a retry sends what the first attempt did. A timeline not read (None): the
        event goes without them (`eval` is read again at its next attempt)."""
        unsummed = _unsummed(kind, data)
        if events is None:
            return {"duration_seconds": None} if unsummed else {}
        return {"eval": is_eval(events), **(await self._summary(data, events) if unsummed else {})}

    async def _summary(self, data: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
        """An ended session's duration (since its request), its cost, a SIP call's `sip` end and a WhatsApp call's
        `whatsapp` record."""
        began = next((e.get("at") for e in events if e.get("event") == "requested"), None)
        ended = data.get("at")
        duration = None
        if isinstance(began, int | float) and isinstance(ended, int | float) and math.isfinite(ended - began):
            duration = round(max(0.0, ended - began), 3)
        cost = None
        if self._costs is not None:
            cost = await self._costs.of_session(str(data["session_id"]), events, running=False, ended_at=ended)
        sip = sip_end_of(events)  # a SIP call's end as its edge told it (dispatcher/observability/sip_end.py)
        whatsapp = whatsapp_of(events)  # a WhatsApp call's record and events (observability/whatsapp_call.py)
        return {"duration_seconds": duration, **({"cost": cost.as_json()} if cost is not None else {}),
                **({"sip": sip} if sip is not None else {}),
                **({"whatsapp": whatsapp} if whatsapp is not None else {})}

    async def aclose(self) -> None:
        # This replica's last events reach the outbox, where another replica finds them; a session's end
        # looked at now may hand one more write over meanwhile, so the writes are waited for until none is left.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT_SECONDS
        while self._puts and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._puts), timeout=left)
        if self._deliverer is not None:
            self._deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliverer
        await self._client.aclose()

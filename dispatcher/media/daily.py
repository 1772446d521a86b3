"""Daily rooms for cloud sessions: one private room per session, self-signed meeting tokens.

The room name comes from the session id and both tokens are HS256 JWTs signed with the API key
(https://docs.daily.co/docs/guides/privacy-and-security/self-signing-tokens), so `grant` makes
no API call once the domain config (name, `domain_id`) is cached: the room is created while the
machine launches. Tokens only let their holder *join* for a short window (`nbf`/`exp`); how
long they may *stay* is `eje` (eject_after_elapsed) = the max session length.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from dispatcher.media.daily_settings import DailySettings as DailySettings  # its importers name it here too
from dispatcher.media.room_options import CloudRecording, RoomOptions, room_options
from dispatcher.media.rooms import NO_OPTIONS, RoomGrant, RoomInfo
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.provider_errors import ProviderError, refusal
from dispatcher.outbound.ratelimit import RateLimited, TokenBucket
from dispatcher.outbound.retry import Backoff, create_request, provider_request

ROOMS_PAGE = 100  # Daily's maximum page size for GET /rooms
MAX_LISTED_ROOMS = 5000  # a sweep's bound: older rooms expire by themselves (`exp`)
CLOCK_SKEW = 30  # seconds of `nbf` slack for clients whose clocks run behind
# A call transfer is no idempotent request: only Daily's 429 (which did nothing) is tried again, within this.
TRANSFER_BACKOFF = Backoff(attempts=3, base=0.2, cap=1.0, deadline=4.0)


class DailyError(ProviderError):
    """Daily failed or refused (mapped to HTTP like any provider failure: provider_errors.py)."""


class DailyRefused(DailyError):
    """Daily answered a request and refused it: its HTTP status and its error's kind (`not-found`, ...)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__("daily_unauthorized" if status in (401, 403) else "daily_rejected", message)
        self.status = status
        self.kind = kind


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_hs256(claims: Mapping[str, Any], key: str) -> str:
    """A compact JWS (RFC 7515) with HS256: one HMAC, so no JWT library (the project's closure has
    none, and a new one would ship in the image for these few lines)."""
    payload = _b64url(orjson.dumps(dict(claims), option=orjson.OPT_SORT_KEYS))
    signing_input = f"{_HS256_HEADER}.{payload}".encode()
    signature = hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
    return f"{_HS256_HEADER}.{payload}.{_b64url(signature)}"


_HS256_HEADER = _b64url(b'{"alg":"HS256","typ":"JWT"}')


@dataclass(frozen=True)
class _Domain:
    name: str
    domain_id: str


class DailyRooms:
    """`Rooms` on Daily's REST API (tests point `DAILY_API_URL` at a fake)."""

    def __init__(self, settings: DailySettings) -> None:
        self.settings = settings
        self._client = HttpClient(
            settings.api_url, headers={"Authorization": f"Bearer {settings.api_key}"}, timeout=settings.timeout
        )
        self._backoff = Backoff(attempts=5, base=0.2, cap=2.0, deadline=settings.retry_deadline)
        self._bucket = TokenBucket("daily", settings.rate)
        self._delete_bucket = TokenBucket("daily-delete", settings.delete_rate)
        self._domain: _Domain | None = None
        self._domain_lock = asyncio.Lock()

    def room_name(self, session_id: str) -> str:
        return f"{self.settings.room_prefix}{session_id}"

    def session_of(self, room: str) -> str | None:
        """The session whose room `room` is (Daily's webhooks name rooms); None: no room this deployment names."""
        prefix = self.settings.room_prefix
        return room[len(prefix):] if room.startswith(prefix) and len(room) > len(prefix) else None

    def bot_user_id(self, session_id: str) -> str:
        return f"bot-{session_id}"

    async def _call(self, method: str, path: str, *, bucket: TokenBucket | None = None, **kw: Any) -> HttpResponse:
        return await provider_request(
            "daily",
            self._client,
            method,
            path,
            backoff=self._backoff,
            bucket=bucket or self._bucket,
            error=DailyError,
            **kw,
        )

    @staticmethod
    def _rejected(response: HttpResponse, what: str) -> DailyError:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('info')}"
        except (ValueError, AttributeError):
            detail = f"HTTP {response.status_code}"
        return refusal(DailyError, "daily", response.status_code, f"Daily refused to {what}: {detail}")

    async def _domain_config(self) -> _Domain:
        """`GET /` once per process: the domain name (room URLs) and `domain_id` (token claim `d`)."""
        if self._domain is None:
            async with self._domain_lock:
                if self._domain is None:
                    response = await self._call("GET", "/")
                    if response.status_code != 200:
                        raise self._rejected(response, "read the domain config")
                    body = response.json()
                    self._domain = _Domain(name=body["domain_name"], domain_id=body["domain_id"])
        return self._domain

    async def room_url(self, session_id: str) -> str:
        domain = await self._domain_config()
        return f"https://{domain.name}.daily.co/{self.room_name(session_id)}"

    def options(
        self, room: Mapping[str, Any] | None, token: Mapping[str, Any] | None, max_session_seconds: int,
        *, keeps_audio: bool = False, keeps_transcript: bool = False,
    ) -> RoomOptions:
        """`keeps_audio` / `keeps_transcript`: the session's recording policy is `on` for them."""
        now = int(time.time())
        return room_options(
            room,
            token,
            now=now,
            room_exp_cap=self.room_exp(max_session_seconds, now),
            token_exp_cap=now + self.settings.user_join_seconds,
            max_session_seconds=max_session_seconds,
            allow_dialout=self.settings.allow_dialout,
            cloud=CloudRecording(self.settings.recordings_bucket, keeps_audio, keeps_transcript),
        )

    async def grant(self, session_id: str, max_session_seconds: int, options: RoomOptions = NO_OPTIONS) -> RoomGrant:
        domain = await self._domain_config()
        room = self.room_name(session_id)
        now = int(time.time())

        def token(user_id: str, user_name: str, join_seconds: int, extra: Mapping[str, Any] | None = None) -> str:
            return sign_hs256(
                {
                    "r": room,
                    "d": domain.domain_id,
                    "iat": now,
                    "nbf": now - CLOCK_SKEW,
                    "exp": now + join_seconds,  # must *join* before this
                    "eje": max_session_seconds,  # ejected this long after joining
                    "o": False,  # neither bot nor user may change or end the room
                    "ud": user_id,
                    "u": user_name,
                    **(extra or {}),  # checked by `options`: never ownership, never a longer life
                },
                self.settings.api_key,
            )

        return RoomGrant(
            room_url=await self.room_url(session_id),
            # Dialling out is an owner's act in Daily: the bot (never the user) owns a dial-out room. A dial-in
            # room's dial-out is the dispatcher's alone (a warm transfer, with its API key): its bot owns nothing.
            bot_token=token(
                self.bot_user_id(session_id), "bot", self.settings.bot_join_seconds,
                {"o": True} if options.room.get("enable_dialout") and "sip" not in options.room else None,
            ),
            user_token=token(f"user-{session_id}", "user", self.settings.user_join_seconds, options.token_claims),
        )

    def room_exp(self, max_session_seconds: int, now: float | None = None) -> int:
        """Nobody can be in the room after a late bot join plus a whole session."""
        join = max(self.settings.bot_join_seconds, self.settings.user_join_seconds)
        return int(now if now is not None else time.time()) + join + max_session_seconds

    async def create(self, session_id: str, max_session_seconds: int, options: RoomOptions = NO_OPTIONS) -> None:
        name = self.room_name(session_id)
        body = {
            "name": name,
            "privacy": "private",  # tokens only
            "properties": {
                "exp": self.room_exp(max_session_seconds),
                "eject_at_room_exp": True,
                "max_participants": 3,  # bot, caller, and one reconnect of the caller
                "enable_prejoin_ui": False,
                **options.room,  # checked by `options`: only presentation, never a later `exp`
            },
        }
        response = await self._call("POST", "/rooms", json=body)
        if response.status_code == 200:
            return
        if response.status_code == 400 and "already exists" in response.text:
            return  # an idempotent replay (or a concurrent replica) created it
        raise self._rejected(response, f"create room {name}")

    async def sip_endpoint(self, session_id: str) -> str | None:
        """The session's room's SIP endpoint, as Daily's room config (`GET /rooms/:name`) has it under
        `config.sip_uri.endpoint` for a room made with `sip`; None: no such room, or one without SIP."""
        name = self.room_name(session_id)
        response = await self._call("GET", f"/rooms/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._rejected(response, f"read the config of {name}")
        config = response.json().get("config")
        sip_uri = config.get("sip_uri") if isinstance(config, dict) else None
        endpoint = sip_uri.get("endpoint") if isinstance(sip_uri, dict) else None
        return endpoint if isinstance(endpoint, str) and endpoint else None

    async def pinless_call_update(self, call_id: str, call_domain: str, sip_uri: str) -> None:
        """Patches a held pinless dial-in call into a room's SIP endpoint (Daily's dial-in API)."""
        body = {"callId": call_id, "callDomain": call_domain, "sipUri": sip_uri}
        response = await self._call("POST", "/dialin/pinlessCallUpdate", json=body)
        if response.status_code != 200:
            raise self._rejected(response, f"connect held call {call_id}")

    async def bot_present(self, session_id: str) -> bool:
        name = self.room_name(session_id)
        response = await self._call("GET", f"/rooms/{name}/presence", params={"userId": self.bot_user_id(session_id)})
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._rejected(response, f"read presence of {name}")
        body = response.json()
        return bool(body.get("total_count") or body.get("data"))

    async def presence(self, session_id: str) -> list[dict[str, Any]] | None:
        """Who is in the session's room now, as Daily's room presence lists them (`id`: the participant's
        session id, `userId`: its meeting token's user, null without one, ...); None: no such room."""
        name = self.room_name(session_id)
        response = await self._call("GET", f"/rooms/{name}/presence")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._rejected(response, f"read presence of {name}")
        data = response.json().get("data")
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    async def sip_call_transfer(self, session_id: str, participant_id: str, to: str,
                                caller_id: str | None = None) -> None:
        """Daily's `sipCallTransfer`: the room's SIP (or PSTN) participant is connected to `to` (an E.164
        number or a SIP URI) while Daily stays in the media path; called from `caller_id` (Daily takes `callerId`
        with a number only: the caller gives none for a SIP URI). A 429 is tried again (it did
        nothing); no answer or a 5xx may have been acted on, so it is never sent again: `daily_unavailable`.
        Raises `DailyRefused` for any other answer than 200."""
        name = self.room_name(session_id)
        body = {"sessionId": participant_id, "toEndPoint": to}
        if caller_id is not None:  # the caller names none for a SIP address (Daily refuses one there: 400)
            body["callerId"] = caller_id
        response = await self._once(f"/rooms/{name}/sipCallTransfer", body)
        if response.status_code != 200:
            raise self._refused(response, f"transfer a call of {name}")

    async def dial_out_start(self, session_id: str, to: str, user_id: str, caller_id: str | None = None) -> str:
        """Daily's `dialOut/start` in the session's room: `to` (an E.164 number or a SIP URI) is called, and
        joins the room as a participant of user `user_id` once connected; the dial-out's `sessionId`. A number
        is called from `caller_id` (`callerId`: the `id` of one of the domain's purchased numbers; None, one
        Daily picks); a SIP URI never is, the number being the PSTN's. As a transfer, no idempotent request:
        only a 429 is tried again, and no answer or a 5xx is `daily_unavailable` (it may be ringing).
        `DailyRefused` for any other answer than 200."""
        name = self.room_name(session_id)
        target: dict[str, str] = {"sipUri": to} if to.startswith(("sip:", "sips:")) else {"phoneNumber": to}
        if caller_id is not None and "phoneNumber" in target:
            target["callerId"] = caller_id
        response = await self._once(f"/rooms/{name}/dialOut/start", {**target, "userId": user_id,
                                                                        "displayName": "transfer"})
        session = response.json().get("sessionId") if response.status_code == 200 else None
        if not isinstance(session, str) or not session:
            raise self._refused(response, f"dial out of {name}")
        return session

    async def dial_out_stop(self, session_id: str, dial_out: str) -> bool:
        """Daily's `dialOut/stop`: the person's leg ended, ringing or answered; False when Daily has no such
        live dial-out (404: it ended already). Safe to repeat, so tried again as any read."""
        name = self.room_name(session_id)
        response = await self._call("POST", f"/rooms/{name}/dialOut/stop", json={"sessionId": dial_out})
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._rejected(response, f"stop a dial-out of {name}")
        return True

    async def update_permissions(self, session_id: str, updates: Mapping[str, Mapping[str, Any]]) -> None:
        """Daily's `update-permissions`: each participant id's new permissions (`canReceive`, `canSend`),
        set whatever they were, so it is tried again as any read. `DailyRefused` (404: not in the room)."""
        name = self.room_name(session_id)
        response = await self._call("POST", f"/rooms/{name}/update-permissions", json={"data": dict(updates)})
        if response.status_code != 200:
            raise self._refused(response, f"update permissions in {name}")

    async def eject(self, session_id: str, participant_id: str) -> None:
        """Daily's `eject` (https://docs.daily.co/reference/rest-api/rooms/eject): the participant's leg ended (a
        SIP leg is hung up). Daily answers 200 for one no longer there, so it is tried again as any read."""
        name = self.room_name(session_id)
        response = await self._call("POST", f"/rooms/{name}/eject", json={"ids": [participant_id]})
        if response.status_code != 200:
            raise self._refused(response, f"eject a participant of {name}")

    async def _once(self, path: str, body: Mapping[str, Any]) -> HttpResponse:
        """A POST Daily may act on without answering: sent once, but for a 429 (which did nothing)."""
        try:
            await self._bucket.acquire()
        except RateLimited as exc:
            raise DailyError("daily_rate_limited", str(exc), retry_after=exc.retry_after, nothing_sent=True) from None
        return await create_request("daily", self._client, "POST", path, backoff=TRANSFER_BACKOFF, error=DailyError,
                                    json=dict(body))

    def _refused(self, response: HttpResponse, what: str) -> DailyRefused:
        try:
            kind = str(response.json().get("error") or "")
        except (ValueError, AttributeError):
            kind = ""
        return DailyRefused(response.status_code, kind, str(self._rejected(response, what)))

    async def delete(self, session_id: str) -> None:
        name = self.room_name(session_id)
        response = await self._call("DELETE", f"/rooms/{name}", bucket=self._delete_bucket)
        if response.status_code in (200, 404):  # 404: already gone (or never created)
            return
        raise self._rejected(response, f"delete room {name}")

    async def list_sessions(self) -> list[RoomInfo]:
        """This deployment's rooms (by name prefix), newest first; at most MAX_LISTED_ROOMS."""
        found: list[RoomInfo] = []
        params: dict[str, str | int] = {"limit": ROOMS_PAGE}
        for _ in range(MAX_LISTED_ROOMS // ROOMS_PAGE):
            response = await self._call("GET", "/rooms", params=params)
            if response.status_code != 200:
                raise self._rejected(response, "list rooms")
            page = response.json().get("data") or []
            for room in page:
                name = str(room.get("name", ""))
                if name.startswith(self.settings.room_prefix):
                    found.append(RoomInfo(name.removeprefix(self.settings.room_prefix), _epoch(room.get("created_at"))))
            if len(page) < ROOMS_PAGE:
                break
            params["ending_before"] = str(page[-1]["id"])  # Daily lists newest first: go older
        return found

    async def aclose(self) -> None:
        await self._client.aclose()


def _epoch(created_at: object) -> float:
    """Daily's `created_at` is ISO 8601 (`2026-11-21T05:00:00.000Z`); unknown means 'now' (kept)."""
    try:
        return datetime.fromisoformat(str(created_at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()

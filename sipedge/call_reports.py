"""The edge's side of an outbound call's reports to the dispatcher, signed with the
edge's own credential (docs/sip.md#edge-credentials; the edge holds no client's API key):
`GET /edge/calls/{id}` for the session's status (its bot `joined`: the INVITE may go),
`POST /edge/calls/{id}/outcome` for what the far end answered, `POST /edge/calls/{id}/sip_end` for how an
answered call ended and its answered seconds (sipedge/sip_end.py), and
`POST /edge/calls/{id}/bridged` when the person of a bridged transfer answered and hung up (their
leg's minutes, at the trunk's outbound price, join the session's telephony line), and
`POST /edge/calls/{id}/warm` for a warm transfer's steps (the bot told to brief the person, to stop, or that
they did not answer), each naming the transfer's request id, which the dispatcher checks is under way.
Every request is bounded (REQUEST_SECONDS) and retried with backoff when the dispatcher cannot be
reached or answers 5xx; an outcome that still cannot be told is logged, and the edge closes the
call's stream, which ends the session anyway."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

log = logging.getLogger("sipedge")

REQUEST_SECONDS = 5.0
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2  # doubled after each failed attempt
POLL_SECONDS = 0.2
WARM_STEP_SECONDS = 23.0  # the bot's briefing (its BRIEF_SECONDS, botchannel/transfer.py) and the way there
STOP_STEP_SECONDS = 4.5  # the bot interrupted (its STOP_SECONDS) and the way there


class CallReports:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS))

    async def close(self) -> None:
        await self._http.close()

    async def until_joined(self, session_id: str) -> str | None:
        """None once the session's bot has joined; else the session's end (`ended`, `failed`).
        The caller bounds the wait."""
        while True:
            try:
                async with self._http.get(self._url(session_id), headers=self._headers) as answer:
                    status = (await answer.json(content_type=None)).get("status") if answer.status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
                status = None  # not known yet (its stream is still being taken), or an answer lost
            if status == "joined":
                return None
            if status in ("ended", "failed"):
                return str(status)
            await asyncio.sleep(POLL_SECONDS)

    async def outcome(self, session_id: str, report: dict[str, Any]) -> bool:
        """True once the dispatcher took the outcome."""
        return await self._post(session_id, "outcome", report, str(report.get("outcome")))

    async def sip_end(self, session_id: str, report: dict[str, Any]) -> bool:
        """True once the dispatcher took an answered outbound call's SIP end (sipedge/sip_end.py's fields)."""
        return await self._post(session_id, "sip_end", report, "SIP end")

    async def bridged(self, session_id: str, report: dict[str, Any]) -> bool:
        """True once the dispatcher took the bridged person's leg's `answered` or `ended`."""
        return await self._post(session_id, "bridged", report, f"bridged leg {report.get('event')}")

    async def warm(self, session_id: str, transfer: str, step: dict[str, Any]) -> bool:
        """A warm transfer's step told (`brief`, `stop`, `failed`), once: the bot must not say it twice. True once
        the bot said its line (`stop`: is quiet), as the dispatcher answers; False when it did not, or no answer
        came in time. `transfer`: the request id the dispatcher asked for the transfer with."""
        stop = step.get("event") == "stop"
        try:
            async with self._http.post(f"{self._url(session_id)}/warm", json={**step, "transfer": transfer},
                                       headers=self._headers, timeout=aiohttp.ClientTimeout(
                                           total=STOP_STEP_SECONDS if stop else WARM_STEP_SECONDS)) as answer:
                said = await answer.json(content_type=None) if answer.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("sipedge: session %s's warm transfer step %s went unanswered: %r", session_id,
                        step.get("event"), exc)
            return False
        return isinstance(said, dict) and said.get("stopped" if stop else "spoken") is True

    async def _post(self, session_id: str, path: str, report: dict[str, Any], what: str) -> bool:
        for attempt in range(ATTEMPTS):
            try:
                async with self._http.post(f"{self._url(session_id)}/{path}", json=report,
                                           headers=self._headers) as answer:
                    if answer.status < 500:
                        if answer.status >= 300:
                            log.warning("sipedge: the dispatcher refused session %s's %s: HTTP %d",
                                        session_id, what, answer.status)
                        return answer.status < 300
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
        log.warning("sipedge: session %s's %s could not be told to the dispatcher", session_id, what)
        return False

    def _url(self, session_id: str) -> str:
        return f"{self.base_url}/edge/calls/{session_id}"

"""The dispatcher's session calls every placed call makes, one implementation for the load test and
the evals: an answer's JSON object, a refusal's code and words, the timeline once the bot reported
its end, and the stop that leaves nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import quote

import httpx


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} for anything else (an HTML error page, a list, no body)."""
    with contextlib.suppress(ValueError):
        if isinstance(body := response.json(), dict):
            return body
    return {}


def refusal(response: httpx.Response) -> tuple[str, str]:
    """A refused start's error code (`http_<status>` without one) and its message, as the dispatcher said them."""
    said = json_object(response).get("error")
    said = said if isinstance(said, dict) else {}
    return str(said.get("code") or f"http_{response.status_code}"), str(said.get("message") or response.text[:200])


def session_url(base_url: str, session_id: str) -> str:
    return f"{base_url}/sessions/{quote(session_id, safe='')}"


async def timeline_once_ended(http: httpx.AsyncClient, base_url: str, session_id: str, headers: dict[str, str],
                              wait: float, poll: float = 0.5) -> list[dict[str, Any]] | None:
    """The session's timeline events once they hold the bot's `ended` report, or as they are `wait`
    seconds on; None when the timeline cannot be read."""
    route = f"{session_url(base_url, session_id)}/timeline"
    deadline = time.monotonic() + wait
    while True:
        try:
            response = await http.get(route, headers=headers)
        except httpx.TransportError:
            return None
        if not response.is_success:
            return None
        events = json_object(response).get("events")
        events = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
        if any(e.get("event") == "ended" for e in events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(poll)


async def stop_session(http: httpx.AsyncClient, base_url: str, session_id: str | None,
                       headers: dict[str, str]) -> None:
    """`DELETE` the session; a dispatcher that cannot be reached is left to end it itself (the caller
    hung up: its bot ends with it, and the dispatcher's reaper has the rest)."""
    if session_id is None:
        return
    with contextlib.suppress(httpx.TransportError):
        await http.delete(session_url(base_url, session_id), headers=headers)

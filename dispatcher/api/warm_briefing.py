"""A warm transfer's steps, told by the SIP edge (`POST /edge/calls/{id}/warm`), passed to the session's bot
over its channel (`call.warm_transfer`, botchannel/transfer.py), at this replica or the one holding it.

`brief`: the person answered and hears the bot; it says its briefing and answers once said (within
BRIEF_SECONDS), and the edge then bridges caller and person whatever the bot answered. `failed`: the
person did not answer and the caller is back with the bot, which says so. Only the edge's secret reaches
this (the route checks it): a client cannot make a bot speak to a caller through it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from botchannel.transfer import BRIEF_SECONDS, FAILED_SECONDS, METHOD_WARM_TRANSFER
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.transfer_target import MAX_SUMMARY_CHARS
from dispatcher.sessions.timeline import TRANSFER_CONSULTING

log = logging.getLogger("dispatcher.phone")


class WarmStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Literal["brief", "failed"]
    to: str | None = Field(default=None, max_length=255)  # the person (brief)
    summary: str | None = Field(default=None, min_length=1, max_length=MAX_SUMMARY_CHARS)  # brief: the request's
    reason: str | None = Field(default=None, max_length=256)  # failed: why (the person's SIP answer)


async def tell_bot(state: AppState, session_id: str, step: WarmStep) -> dict[str, Any]:
    """`{"spoken": bool}`: whether the bot said its line in time (False: no bot, or it did not answer)."""
    if step.event == "brief":
        state.sessions.timeline.note(session_id, TRANSFER_CONSULTING, to=step.to or "")
    params: dict[str, Any] = {"event": step.event}
    if step.summary is not None:
        params["summary"] = step.summary
    if step.reason is not None:
        params["reason"] = step.reason
    timeout = BRIEF_SECONDS if step.event == "brief" else FAILED_SECONDS
    try:
        answer = await _ask(state, session_id, params, timeout)
    except (ApiError, TimeoutError) as exc:  # BotRequestFailed among them: no bot, or no answer in time
        log.warning("phone call %s: the bot was not told the warm transfer's %s: %s", session_id, step.event, exc)
        return {"spoken": False}
    return {"spoken": bool(answer is not None and answer.get("spoken"))}


async def _ask(state: AppState, session_id: str, params: Mapping[str, Any], timeout: float
               ) -> Mapping[str, Any] | None:
    link = state.channels.link_for(session_id)
    if link is not None:
        return await link.request(METHOD_WARM_TRANSFER, params, timeout=timeout)
    return await state.remote.ask(session_id, METHOD_WARM_TRANSFER, params, timeout=timeout)

"""A warm transfer's steps, told by the SIP edge (`POST /edge/calls/{id}/warm`), passed to the session's bot
over its channel (`call.warm_transfer`, botchannel/transfer.py), at this replica or the one holding it.

`brief`: the person answered and hears the bot; it says its briefing and answers once said (within
BRIEF_SECONDS), and the edge then bridges caller and person whatever the bot answered. `stop`: the person
left during the briefing; the bot is interrupted, the caller still on hold. `failed`: the person did not
answer (or left) and the caller is back with the bot, which says so. Only the edge's secret reaches this
(the route checks it), and only for a warm transfer under way (`under_way`: the store's first claim of
the transfer's request id is the asking dispatcher's): no other step makes a bot speak to a caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from botchannel.transfer import BRIEF_SECONDS, FAILED_SECONDS, METHOD_WARM_TRANSFER, STOP_SECONDS
from dispatcher.api.state import AppState
from dispatcher.channel.remote import ask_bot
from dispatcher.errors import ApiError
from dispatcher.phone.sip_transfers import WARM_ASKED, WARM_UNDER_WAY_SECONDS, warm_key
from dispatcher.phone.transfer_target import MAX_SUMMARY_CHARS
from dispatcher.sessions.timeline import TRANSFER_CONSULTING
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.phone")
STEP_SECONDS = {"brief": BRIEF_SECONDS, "failed": FAILED_SECONDS, "stop": STOP_SECONDS}  # the bot's answer


class WarmStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Literal["brief", "failed", "stop"]
    transfer: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the transfer's request id, as the dispatcher asked
    to: str | None = Field(default=None, max_length=255)  # the person (brief)
    summary: str | None = Field(default=None, min_length=1, max_length=MAX_SUMMARY_CHARS)  # brief: the request's
    reason: str | None = Field(default=None, max_length=256)  # failed: why (the person's SIP answer)


async def under_way(state: AppState, session_id: str, step: WarmStep) -> None:
    """A 409 unless this dispatcher, or another replica through the store, asked the edge for this transfer."""
    try:
        first = await state.replication.coordination.key_holders.first(
            warm_key(session_id, step.transfer), "told", WARM_UNDER_WAY_SECONDS)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store did not answer whether this warm transfer is under "
                       "way: the step is not told", retry_after=1) from None
    if first != WARM_ASKED:
        raise ApiError(409, "no_warm_transfer", "no warm transfer of this call is under way: a step is told only "
                       "for a transfer this dispatcher asked the edge for (POST /sessions/{id}/transfer, "
                       "\"mode\": \"warm\"), within its time")


async def tell_bot(state: AppState, session_id: str, step: WarmStep) -> dict[str, Any]:
    """`{"spoken": bool}`: whether the bot said its line in time (False: no bot, or it did not answer);
    `{"stopped": bool}` for `stop`: whether it is quiet."""
    if step.event == "brief":
        state.sessions.timeline.note(session_id, TRANSFER_CONSULTING, to=step.to or "")
    params: dict[str, Any] = {"event": step.event}
    if step.summary is not None:
        params["summary"] = step.summary
    if step.reason is not None:
        params["reason"] = step.reason
    said = "stopped" if step.event == "stop" else "spoken"
    try:
        answer = await _ask(state, session_id, params, STEP_SECONDS[step.event])
    except (ApiError, TimeoutError) as exc:  # BotRequestFailed among them: no bot, or no answer in time
        log.warning("phone call %s: the bot was not told the warm transfer's %s: %s", session_id, step.event, exc)
        return {said: False}
    return {said: bool(answer is not None and answer.get(said))}


async def _ask(state: AppState, session_id: str, params: Mapping[str, Any], timeout: float
               ) -> Mapping[str, Any] | None:
    return await ask_bot(state.channels, state.remote, session_id, METHOD_WARM_TRANSFER, params, timeout)

"""The two ways a call is handed to a person, wherever its stream is (dispatcher/phone/transfer_anywhere.py):
a client's `POST /sessions/{id}/transfer` (dispatcher/api/routers/transfer.py) and the session's own bot
over its channel (`call.transfer`). A bot's channel is its session's alone, so the bot transfers its own
call and no other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import RequestFailed
from dispatcher.channel.bots import BotLink
from dispatcher.errors import ApiError
from dispatcher.phone.transfer_anywhere import TransfersAnywhere
from dispatcher.phone.transfer_target import transfer_target


def bot_transfer(
    transfers: TransfersAnywhere,
) -> Callable[[BotLink, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]:
    async def answer(link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            target = transfer_target(params.get("to"), params.get("mode"), params.get("summary"))
            answer = await transfers.transfer(str(link.session_id), target)
            if answer is None:
                raise ApiError(409, "no_live_call", "this session has no live phone call at any of the dispatcher's "
                               "replicas: transfers work on Twilio, Telnyx and Plivo media-stream calls that came in "
                               "through their signed webhook or were placed with POST /calls, on Exotel Voicebot "
                               "calls, on calls through the SIP edge, and on Daily dial-in calls")
            return answer
        except ApiError as exc:
            raise RequestFailed(exc.status, exc.code, exc.message) from None

    return answer

"""`transfer_call`: your bot hands its own phone call to a person, for instance from an LLM tool.

    from bot.transfer import transfer_call

    await transfer_call("+14155550100")              # or "sip:desk@pbx.example.com"

The dispatcher does it with the carrier's credentials it holds (the bot holds none for this): Twilio
rings the person, the call's stream to this bot ends, and the session ends as `transferred`. Do not
end your pipeline yourself after it: Pipecat's serializer hangs the call up through the carrier's API
on an `EndFrame` sent while the stream is still open, which would cut the caller off from the person;
the stream's close ends the pipeline as a hang-up does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import RequestFailed
from botchannel.transfer import METHOD_CALL_TRANSFER, TRANSFER_TIMEOUT_SECONDS

Ask = Callable[[str, Mapping[str, Any], float], Awaitable[Mapping[str, Any]]]
_ask: list[Ask] = []  # this process's channel to the dispatcher: one bot, one session


class TransferFailed(Exception):
    """The dispatcher refused or could not do the transfer: its `status`, `code` and message (the call goes on)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def serve_transfers(ask: Ask) -> None:
    """The bot host's channel (bot/channel_session.py) carries `transfer_call`'s request."""
    _ask[:] = [ask]


async def transfer_call(to: str, mode: str = "cold") -> dict[str, Any]:
    """Hands this bot's call to `to` (E.164 or a sip: URI): the dispatcher's answer (`status`:
    `transferred`, `carrier_status`), or `TransferFailed` saying why (the call then goes on with the bot)."""
    if not _ask:
        raise TransferFailed(503, "no_channel", "this bot is not running under voicefleet's bot host "
                             "(python -m bot), so there is no dispatcher to ask")
    try:
        return dict(await _ask[0](METHOD_CALL_TRANSFER, {"to": to, "mode": mode}, TRANSFER_TIMEOUT_SECONDS))
    except RequestFailed as exc:
        raise TransferFailed(exc.status, exc.code, exc.message) from None

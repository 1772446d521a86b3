"""`transfer_call`: your bot hands its own phone call to a person, for instance from an LLM tool.

    from bot.transfer import transfer_call

    await transfer_call("+14155550100")              # or "sip:desk@pbx.example.com"
    await transfer_call("+14155550100", mode="warm", summary="Ana, order 1042, wants a refund.")

A warm transfer through the SIP edge: the caller hears hold music while the person rings; once
they answer, this bot hears them and says `summary` to them (or, without one, what your
`on_warm_transfer` handler returns for the `brief` step, else a default line), then the caller and the
person are bridged. Unanswered, the caller is back with this bot, which says so (the `failed` step:
your handler's line, else a default one) and `transfer_call` raises `TransferFailed`
(`person_unanswered`, `person_busy`, `person_declined`, `person_left`). On a Twilio call the caller
stays with this bot while the person rings (`transfer_call` is still waiting: keep them company), and
Twilio's own `<Say>` voice reads the briefing (the same text) to the person before the two are joined.
On a Daily dial-in call the person is dialled into this bot's room: it keeps the caller company while they
ring, then says the briefing into the room (the caller hears it too) before the two hear each other.

The dispatcher does it with the carrier's credentials it holds (the bot holds none for this): Twilio
rings the person, the call's stream to this bot ends, and the session ends as `transferred`. Do not
end your pipeline yourself after it: Pipecat's serializer hangs the call up through the carrier's API
on an `EndFrame` sent while the stream is still open, which would cut the caller off from the person;
the stream's close ends the pipeline as a hang-up does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from botchannel.contract import RequestFailed
from botchannel.transfer import (
    DEFAULT_BRIEFING,
    METHOD_CALL_TRANSFER,
    TRANSFER_TIMEOUT_SECONDS,
    WARM_TRANSFER_TIMEOUT_SECONDS,
)

Ask = Callable[[str, Mapping[str, Any], float], Awaitable[Mapping[str, Any]]]
_ask: list[Ask] = []  # this process's channel to the dispatcher: one bot, one session
DEFAULT_FAILED = "I'm sorry, nobody could take your call right now. I'm still here: how can I help?"
DEFAULT_RINGING = "I'm calling someone who can help you now. Please stay on the line."
DEFAULTS = {"brief": DEFAULT_BRIEFING, "ringing": DEFAULT_RINGING}


@dataclass(frozen=True)
class WarmStep:
    """A warm transfer's step: `brief` (the person answered: what to tell them), `failed` (they did not:
    what to tell the caller, `reason` says why) or, on a Twilio call, `ringing` (the person is being
    called and the caller is still with the bot: what to tell the caller meanwhile)."""
    event: str
    to: str | None = None
    reason: str | None = None


WarmHandler = Callable[[WarmStep], "Awaitable[str | None] | str | None"]
# The steps a handler is asked for unless it names its own: the contract's first two. A later step (`ringing`) is
# asked only of a handler that declares it, so one written for these two (an `else` as its failure line) never
# says that line to a caller whose person is still ringing: it gets the step's default line instead.
HANDLER_STEPS = ("brief", "failed")
WARM_STEPS = frozenset({"brief", "failed", "ringing"})
_warm: list[tuple[WarmHandler, frozenset[str]]] = []


@overload
def on_warm_transfer(handler: WarmHandler, *, steps: Iterable[str] = HANDLER_STEPS) -> WarmHandler: ...
@overload
def on_warm_transfer(*, steps: Iterable[str] = HANDLER_STEPS) -> Callable[[WarmHandler], WarmHandler]: ...


def on_warm_transfer(handler: WarmHandler | None = None, *, steps: Iterable[str] = HANDLER_STEPS
                     ) -> WarmHandler | Callable[[WarmHandler], WarmHandler]:
    """Registers what this bot says at a warm transfer's steps: the text (None: the default line). Usable
    as a decorator, bare or as `@on_warm_transfer(steps=("brief", "ringing", "failed"))`: the handler is asked
    only for the `steps` it takes (by default `brief` and `failed`), the others get their default line. A
    later one replaces an earlier one."""
    taken = frozenset(steps)
    unknown = taken - WARM_STEPS
    if unknown:
        raise ValueError(f"on_warm_transfer: unknown steps {sorted(unknown)}: the steps are {sorted(WARM_STEPS)}")

    def register(chosen: WarmHandler) -> WarmHandler:
        _warm[:] = [(chosen, taken)]
        return chosen

    return register(handler) if handler is not None else register


async def warm_line(step: WarmStep, summary: str | None = None) -> str:
    """What to say at `step`: the request's summary, else the bot's handler's text (a step it takes), else
    the step's default."""
    if step.event == "brief" and summary:
        return summary
    said = _warm[0][0](step) if _warm and step.event in _warm[0][1] else None
    if inspect.isawaitable(said):
        said = await said
    if isinstance(said, str) and said.strip():
        return said
    return default_line(step.event)


def default_line(event: str) -> str:
    return DEFAULTS.get(event, DEFAULT_FAILED)


class TransferFailed(Exception):
    """The dispatcher refused or could not do the transfer: its `status`, `code` and message (the call goes on)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def serve_transfers(ask: Ask) -> None:
    """The bot host's channel (bot/channel_session.py) carries `transfer_call`'s request."""
    _ask[:] = [ask]


async def transfer_call(to: str, mode: str = "cold", summary: str | None = None) -> dict[str, Any]:
    """Hands this bot's call to `to` (E.164 or a sip: URI): the dispatcher's answer (`status`:
    `transferred`, `carrier_status`), or `TransferFailed` saying why (the call then goes on with the bot).
    `mode="warm"`: this bot briefs the person first (`summary`, else its `on_warm_transfer` line)."""
    if not _ask:
        raise TransferFailed(503, "no_channel", "this bot is not running under voicefleet's bot host "
                             "(python -m bot), so there is no dispatcher to ask")
    try:
        asked: dict[str, Any] = {"to": to, "mode": mode, **({"summary": summary} if summary is not None else {})}
        wait = WARM_TRANSFER_TIMEOUT_SECONDS if mode == "warm" else TRANSFER_TIMEOUT_SECONDS
        return dict(await _ask[0](METHOD_CALL_TRANSFER, asked, wait))
    except RequestFailed as exc:
        raise TransferFailed(exc.status, exc.code, exc.message) from None

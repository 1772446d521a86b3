"""A SIP call's eval mark and release pin, from the eval token the SIP edge forwards (`eval_token`:
dispatcher/phone/eval_tokens.py). The token is checked and spent here, before anything starts: a
forged, expired, spent or another key's token refuses the start (403 `eval_token_refused`, with
`error.reason`), which the edge answers `603 Decline`, rather than quietly run an unmarked call the eval
would then count as its own."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.api.schemas import StartRequest
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.eval_tokens import EvalTokenRefused
from dispatcher.sessions.ids import Caller

_WHY = {
    "forged": "it was not made by this deployment (or was altered)",
    "expired": "it is past its life: ask for a fresh one just before the call",
    "replayed": "it was spent by an earlier call: each call needs its own",
    "foreign": "another API key asked for it: ask with the number's key, the one its calls run as",
    "wrong_region": "another region made it: ask the region the call reaches",
}


@dataclass(frozen=True)
class EvalMark:
    release: str | None
    evaluation: bool


async def eval_mark(state: AppState, who: Caller, payload: StartRequest) -> EvalMark:
    """The start's own `release` and `eval`, or, with an `eval_token`, the token's (checked, spent)."""
    if payload.eval_token is None:
        return EvalMark(payload.release, payload.eval is True)
    if state.phone.eval_tokens is None:
        raise ApiError(503, "eval_tokens_unavailable", "this dispatcher makes no eval tokens", retry_after=5)
    try:
        grant = await state.phone.eval_tokens.redeem(payload.eval_token, who.id)
    except EvalTokenRefused as refused:
        raise ApiError(403, "eval_token_refused", f"the call's X-Voicefleet-Eval token marks nothing: "
                       f"{_WHY.get(refused.reason, refused.reason)}", extra={"reason": refused.reason}) from None
    return EvalMark(grant.release if grant.release is not None else payload.release, grant.evaluation)

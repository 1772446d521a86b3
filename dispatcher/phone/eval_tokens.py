"""Eval tokens: how a SIP eval's call is marked an eval's and pinned to a release, though the SIP edge,
not the caller, sends its start. The eval asks for one with its own API key (`POST /sip/eval_tokens`),
sends it in its INVITE as `X-Voicefleet-Eval`, and the edge forwards it as the start's `eval_token`.
A caller's SIP headers are anyone's to write, so the token proves itself: it is a call token
(tokens.py, the one signing) under a key derived apart from the phone token key, binding the asking
key's caller id, the release, the eval mark (a load test asks for a pin alone), a life of
EVAL_TOKEN_SECONDS and a one-use id spent in the store's spent set (every replica sees it spent).
The start it rides on must run as the same key (the number's)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from dispatcher.phone.tokens import CallGrant, CallTokens, TokenRefused
from dispatcher.store.coordination import OneTimeUse

EVAL_TOKEN_SECONDS = 120  # the INVITE follows the ask within seconds; a ringing call is not minutes
HEADER = "X-Voicefleet-Eval"
_KIND = "sip-eval"  # the tokens' `carrier`: a phone call token is never one, nor the reverse


class EvalTokenRefused(Exception):
    """Why an eval token marks nothing: `forged`, `expired`, `replayed`, `foreign` (another key's)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EvalTokens:
    def __init__(self, phone_key: bytes, spent: OneTimeUse, *, region: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        key = hmac.new(phone_key, b"voicefleet sip eval tokens v1", hashlib.sha256).digest()
        self._tokens = CallTokens(key, seconds=EVAL_TOKEN_SECONDS, clock=clock, region=region)
        self._spent = spent
        self._clock = clock

    def mint(self, owner: str, release: str | None, evaluation: bool = True) -> tuple[str, CallGrant]:
        """A token for one SIP call of `owner` (a caller id), pinned to `release` (None: the key's own),
        an eval's unless `evaluation` is False (a load test's pinned call, counted as a caller's)."""
        return self._tokens.mint(_KIND, owner=owner, release=release, evaluation=evaluation)

    async def redeem(self, token: str, owner: str) -> CallGrant:
        """The grant, spent now, when `token` is valid and `owner`'s; else `EvalTokenRefused`."""
        try:
            grant = self._tokens.check(token, _KIND)
        except TokenRefused as refused:
            raise EvalTokenRefused("forged" if refused.reason == "wrong_carrier" else refused.reason) from None
        if grant.owner != owner:  # checked before spending: another key's call cannot burn it
            raise EvalTokenRefused("foreign")
        if not await self._spent.first_use(f"eval-token:{grant.token_id}", grant.expires - self._clock() + 60.0):
            raise EvalTokenRefused("replayed")
        return grant

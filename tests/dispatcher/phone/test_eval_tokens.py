"""An eval token (dispatcher/phone/eval_tokens.py): it marks one call, of the key that asked, within
its life; a forged, altered, expired, spent or another key's token marks nothing."""

from __future__ import annotations

import pytest

from dispatcher.phone.eval_tokens import EVAL_TOKEN_SECONDS, EvalTokenRefused, EvalTokens
from dispatcher.phone.tokens import CallTokens
from dispatcher.store.memory import LocalOnce

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock | None = None, key: bytes = KEY) -> EvalTokens:
    return EvalTokens(key, LocalOnce(), clock=clock or Clock())


async def refused(eval_tokens: EvalTokens, token: str, owner: str = "caller-a") -> str:
    with pytest.raises(EvalTokenRefused) as caught:
        await eval_tokens.redeem(token, owner)
    return caught.value.reason


async def test_a_token_marks_its_keys_call_an_evals_pinned_to_its_release() -> None:
    eval_tokens = tokens()
    token, _ = eval_tokens.mint("caller-a", "v42")
    grant = await eval_tokens.redeem(token, "caller-a")
    assert (grant.owner, grant.release, grant.evaluation) == ("caller-a", "v42", True)


async def test_a_token_is_spent_by_its_first_call() -> None:
    eval_tokens = tokens()
    token, _ = eval_tokens.mint("caller-a", None)
    await eval_tokens.redeem(token, "caller-a")
    assert await refused(eval_tokens, token) == "replayed"


async def test_another_keys_token_is_refused_and_left_unspent_for_its_own_key() -> None:
    eval_tokens = tokens()
    token, _ = eval_tokens.mint("caller-b", "v42")
    assert await refused(eval_tokens, token, "caller-a") == "foreign"
    assert (await eval_tokens.redeem(token, "caller-b")).release == "v42"


async def test_a_token_past_its_life_is_refused() -> None:
    clock = Clock()
    eval_tokens = tokens(clock)
    token, _ = eval_tokens.mint("caller-a", None)
    clock.now += EVAL_TOKEN_SECONDS
    assert await refused(eval_tokens, token) == "expired"


@pytest.mark.parametrize("forge", ["made with another key", "release altered", "not a token", "a phone call token"])
async def test_a_forged_or_altered_token_is_refused(forge: str) -> None:
    eval_tokens = tokens()
    token, _ = eval_tokens.mint("caller-a", "v42")
    payload, _, signature = token.partition(".")
    forged = {
        "made with another key": tokens(key=b"x" * 32).mint("caller-a", "v42")[0],
        "release altered": tokens().mint("caller-a", "v43")[0].partition(".")[0] + "." + signature,
        "not a token": "X-Voicefleet-Eval: please",
        # The phone token key's own tokens (a carrier's URL) are no eval tokens, though keyed alike.
        "a phone call token": CallTokens(KEY).mint("sip-eval", owner="caller-a", release="v42", evaluation=True)[0],
    }[forge]
    assert await refused(eval_tokens, forged) == "forged"

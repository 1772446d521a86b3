"""A SIP call's mark and pin (docs/sip.md): the edge, not the caller, sends the call's start, so the
caller asks the dispatcher for a token (`POST /sip/eval_tokens`, with its own key, the number's) and
sends it in its INVITE as `X-Voicefleet-Eval`; the edge forwards it and the dispatcher checks it. One
token a call: each is spent by its call and lives about two minutes. The token reaches the caller's
PJSUA2 process in its environment (ENV), never on its command line."""

from __future__ import annotations

import asyncio

import httpx

ENV = "VOICEFLEET_SIP_EVAL_TOKEN"  # noqa: S105 - a variable's name
REQUEST_SECONDS = 10.0
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5  # doubled after each connection that failed


class EvalTokenRefused(ConnectionError):
    """The dispatcher made no token: its words, and what to do."""


async def sip_eval_token(http: httpx.AsyncClient, base_url: str, headers: dict[str, str], release: str | None,
                         evaluation: bool) -> str:
    """A token for one call; `EvalTokenRefused` when the dispatcher refuses (an unknown release: 422)
    or cannot be reached. Only a connection never made is tried again: nothing was minted."""
    asked: dict[str, object] = {"eval": evaluation}
    if release is not None:
        asked["release"] = release
    for attempt in range(ATTEMPTS):
        try:
            answer = await http.post(f"{base_url.rstrip('/')}/sip/eval_tokens", json=asked, headers=headers,
                                     timeout=REQUEST_SECONDS)
            break
        except httpx.ConnectError as error:
            if attempt + 1 == ATTEMPTS:
                raise EvalTokenRefused(f"the dispatcher at {base_url} could not be reached for the call's eval "
                                       f"token ({error})") from None
            await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
        except httpx.HTTPError as error:
            raise EvalTokenRefused(f"POST /sip/eval_tokens failed: {type(error).__name__}") from None
    token = _token(answer)
    if token is None:
        raise EvalTokenRefused(_refusal(answer))
    return token


def _token(answer: httpx.Response) -> str | None:
    if answer.status_code != 201:
        return None
    try:
        token = answer.json().get("token")
    except ValueError:
        return None
    return token if isinstance(token, str) and token else None


def _refusal(answer: httpx.Response) -> str:
    try:
        error = answer.json().get("error") or {}
        said = f"{error.get('code', '')}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        said = answer.text[:200]
    if answer.status_code == 404:
        said = "this dispatcher has no POST /sip/eval_tokens: update it to pin or mark SIP calls"
    elif answer.status_code == 422:
        said += " (`voicefleet releases` lists the releases this dispatcher has)"
    return f"the dispatcher made no eval token for the call (HTTP {answer.status_code}) {said}"

"""An identity-only hello's token, read before the API server is asked anything about it.

A pool bot's hello carries no credential (k8s/pool_bots.py), so whoever reaches the channel may send
one, and each would cost a TokenReview. Its token is first read as it says it is, unverified: a bound
ServiceAccount token is a JWT whose payload names its audiences (`aud`), its ServiceAccount
(`sub`: `system:serviceaccount:<namespace>:<name>`), its expiry (`exp`) and, for a pod's projected
token, the pod in the private claim `kubernetes.io` (`{"kubernetes.io": {"pod": {"name": …, "uid": …}}}`:
kubernetes/kubernetes `pkg/serviceaccount/claims.go`, `privateClaims`, `kubernetes`, `ref`). A token
that is not such a JWT, is over MAX_TOKEN_CHARS, is not of voicefleet's audience or the bots'
ServiceAccount, names another pod than the hello's machine, or has expired is refused here, with no
call. Nothing read here is trusted: the TokenReview (k8s/identity.py) still decides. It is a filter for
junk, not a gate: the signature is not checked, so a token forged from public facts (the namespace, the
ServiceAccount, the audience, a pod's name) passes and costs a review; the identity-only sockets' places
and rate and the reviews' own connections (dispatcher/channel/identity_only_gate.py, k8s/api.py) bound that.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any

import orjson

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import IdentityOnly

MAX_TOKEN_CHARS = 4096  # a pod's projected token is ~1 KB; a header's worth past it is no token of ours


def _payload(token: str) -> dict[str, Any] | str:
    """The JWT's payload, decoded but not verified, or why the token is no JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return "the identity token is not a JWT (three dot-separated parts)"
    try:
        raw = base64.b64decode(parts[1] + "=" * (-len(parts[1]) % 4), altchars=b"-_", validate=True)
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return "the identity token's payload is not base64url JSON"
    return payload if isinstance(payload, dict) else "the identity token's payload is not a JSON object"


def _field(claims: Any, *path: str) -> Any:
    for key in path:
        claims = claims.get(key) if isinstance(claims, dict) else None
    return claims


def precheck_refusal(token: str, *, audience: str, username: str, machine_id: str, now: float) -> str | None:
    """Why the token cannot be the hello's pod's projected token of voicefleet's audience, or None."""
    if len(token) > MAX_TOKEN_CHARS:
        return f"the identity token is over {MAX_TOKEN_CHARS} characters (a pod's projected token is ~1 KB)"
    claims = _payload(token)
    if isinstance(claims, str):
        return claims
    aud = claims.get("aud")
    if audience not in ([aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []):
        return f"the identity token is not for {audience}"
    if claims.get("sub") != username:
        return f"the identity token is not the bots' ServiceAccount's ({username}, K8S_SERVICE_ACCOUNT)"
    pod = _field(claims, "kubernetes.io", "pod", "name")
    if not isinstance(pod, str) or not pod:
        return "the identity token names no pod (a pod's projected ServiceAccount token: BOT_IDENTITY=k8s)"
    if pod != machine_id:
        return f"the identity token is pod {pod[:80]}'s, not {machine_id}'s"
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool) or expires <= now:
        return "the identity token has expired (the kubelet refreshes it: dial again with the file's newest)"
    return None


class PrecheckedPool:
    """`pool`'s grant, asked only for a hello whose token passes `precheck_refusal`."""

    def __init__(self, pool: IdentityOnly, *, audience: str, username: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._pool, self._audience, self._username, self._clock = pool, audience, username, clock

    async def grant(self, hello: Hello) -> BotGrant | str:
        if not hello.identity:
            return "a hello without a credential must carry its pod's identity token (BOT_IDENTITY=k8s)"
        refused = precheck_refusal(hello.identity, audience=self._audience, username=self._username,
                                   machine_id=hello.machine_id, now=self._clock())
        return refused if refused is not None else await self._pool.grant(hello)

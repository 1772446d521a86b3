"""Which release a session runs: its pin (the start's `release`), else its key's default release,
else one drawn by weight from the session id. The session id is derived from the caller's key and
`Idempotency-Key`, so a retried start draws the same release while the weights stand.

The draw is keyed with a secret of the deployment (`DrawKey`): a client that can compute its own
session ids (an unnamed key can) cannot tell in advance which of its starts land on a canary."""

from __future__ import annotations

import hashlib
import hmac

from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.traffic import Traffic, unknown_release

BUCKETS = 10_000  # a weight of 1 % is 100 buckets: the draw is even to a hundredth of a percent


class DrawKey:
    """The draw's own key, derived from the deployment's secret (the same at every replica and region)
    and keyed once: each draw copies it rather than keying an HMAC afresh at every start."""

    def __init__(self, deployment_secret: bytes) -> None:
        own = hmac.new(deployment_secret, b"voicefleet release draw v1", hashlib.sha256).digest()
        self._keyed = hmac.new(own, digestmod=hashlib.sha256)

    def bucket(self, session_id: str) -> int:
        mac = self._keyed.copy()
        mac.update(session_id.encode())
        return int.from_bytes(mac.digest()[:8]) % BUCKETS


def drawn(traffic: Traffic, session_id: str, key: DrawKey) -> str:
    """The release a session with this id gets by weight (releases in name order, so every replica agrees)."""
    bucket = key.bucket(session_id)
    reached = 0
    for name in sorted(traffic.weights):
        reached += traffic.weights[name] * (BUCKETS // 100)
        if bucket < reached:
            return name
    return traffic.stable  # unreachable while the weights add up to 100


def release_for(traffic: Traffic, catalogue: Catalogue, session_id: str, key: DrawKey, *, pinned: str | None = None,
                key_default: str | None = None, drawn_by_weight: bool = True) -> tuple[Release, str]:
    """The session's release and how it was chosen: `pinned`, `key`, `weight`, or `stable` (a session
    not `drawn_by_weight`, an eval: it runs a known release, never a canary's share by chance)."""
    for wanted, how in ((pinned, "pinned"), (key_default, "key")):
        if wanted is not None:
            release = catalogue.get(wanted)
            if release is None:
                raise unknown_release(wanted, catalogue.names)
            return release, how
    if not drawn_by_weight:
        return catalogue.get(traffic.stable) or catalogue.newest, "stable"
    # A release this replica's list lacks (a newer list's, during a rolling deploy): the stable one.
    release = catalogue.get(drawn(traffic, session_id, key)) or catalogue.get(traffic.stable)
    return (release or catalogue.newest), "weight"

"""Per-machine bot credentials: each machine the dispatcher launches gets its own.

A bot is the least trusted part of a deployment: it runs the user's code and talks to strangers.
So no bot holds the deployment secret (`BOT_CHANNEL_TOKEN`, the dispatcher's alone). When the
dispatcher launches a machine it derives that machine's credential from the secret:

    vfb1.<kind>.<subject, base64url>.<expiry, Unix seconds>.<HMAC-SHA256 tag, base64url>

`kind` is `idle` (a reserve bot; the subject is the bot id the reserve launched it with) or
`session` (a cold bot; the subject is its session id). The bot presents it as its channel
credential (`Authorization: Bearer …`); the channel checks the tag and the expiry before the
handshake, then that the bot's hello names what the credential was issued for
(dispatcher/channel/bots.py). A stolen credential opens one machine's channel until it expires,
nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dispatcher.numbers import bounded_digits

PREFIX = "vfb1"
Kind = Literal["idle", "session"]
KINDS: tuple[Kind, ...] = ("idle", "session")
MAX_SUBJECT_CHARS = 128  # bot ids and session ids are far shorter


@dataclass(frozen=True)
class BotGrant:
    """What a verified credential opens: one idle bot id, or one session's bot."""

    kind: Kind
    subject: str
    expires: int
    # An identity-only grant's machine as its identity named it when reviewed (a pod's uid): a later
    # machine of the same name is another, whatever the link's name says.
    machine_uid: str | None = None


class BotCredentials:
    def __init__(self, deployment_secret: str, clock: Callable[[], float] = time.time) -> None:
        # A key derived for this use alone: the deployment secret itself signs nothing.
        root = deployment_secret.encode()
        self._bot_key = hmac.new(root, b"voicefleet bot channel credential v1", hashlib.sha256).digest()
        # Seals cold sessions' values in the replicas' store (dispatcher/store/secrets_vault.py).
        self.sealing_key = hmac.new(root, b"voicefleet session values v1", hashlib.sha256).digest()
        self._clock = clock

    def issue(self, kind: Kind, subject: str, ttl_seconds: float) -> str:
        """A fresh credential for the machine launched as `subject`, valid for `ttl_seconds`
        (the machine's longest life: an idle wait and one session)."""
        if kind not in KINDS or not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise ValueError(f"cannot issue a {kind!r} credential for {subject!r}")
        expires = int(self._clock() + ttl_seconds)
        encoded = _b64(subject.encode())
        return f"{PREFIX}.{kind}.{encoded}.{expires}.{self._tag(kind, encoded, expires)}"

    def verify(self, presented: str) -> BotGrant | None:
        """The grant of a genuine, unexpired credential; None for anything else."""
        parts = presented.split(".")
        if len(parts) != 5 or parts[0] != PREFIX or parts[1] not in KINDS:
            return None
        _, kind, encoded, expiry, tag = parts
        expires = bounded_digits(expiry, 12)
        if expires is None:
            return None
        if not hmac.compare_digest(tag, self._tag(kind, encoded, expires)):
            return None
        if expires <= self._clock():
            return None
        try:
            subject = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return BotGrant("idle" if kind == "idle" else "session", subject, expires)

    def _tag(self, kind: str, encoded_subject: str, expires: int) -> str:
        message = f"{kind}\x00{encoded_subject}\x00{expires}".encode()
        return _b64(hmac.new(self._bot_key, message, hashlib.sha256).digest())


def bearer(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer …` header, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

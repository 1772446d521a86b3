"""The SIP edge's proof that a request is its own: `SIP_EDGE_SECRET`, which the edge's file names as
`control_secret_env`. The edge presents it as a Bearer token on its control routes (outbound calls:
dispatcher/api/routers/trunk_calls.py) and in `X-Voicefleet-Edge-Secret` beside the number's API key on
an inbound call's `POST /start`, whose trunk price only it may set (dispatcher/usage/trunk_line.py).
Compared in constant time; never logged."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_text

VARIABLE = "SIP_EDGE_SECRET"  # noqa: S105 - the variable's name
HEADER = "X-Voicefleet-Edge-Secret"
MIN_SECRET_CHARS = 32


@dataclass(frozen=True)
class EdgeSecret:
    secret: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], needed_by: str = "") -> EdgeSecret | None:
        """None when unset (and nothing needs it); `needed_by` names what needs it (SIP_EDGE_URL)."""
        secret = setting_text(env, "SIP_EDGE_SECRET")
        if not secret and not needed_by:
            return None
        if len(secret) < MIN_SECRET_CHARS:
            said = f"{needed_by} is set: " if needed_by else ""
            raise SettingsError(f"{said}{VARIABLE} must be at least {MIN_SECRET_CHARS} characters (the value the "
                                "SIP edge's control_secret_env names)")
        return cls(secret)

    def presented(self, given: str | None) -> bool:
        """Whether `given` (a header's value, `Bearer ` or not) is the secret."""
        return hmac.compare_digest((given or "").removeprefix("Bearer ").encode(), self.secret.encode())

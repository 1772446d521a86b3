"""The SIP edge's credentials, each derived for one edge from the deployment's `SIP_EDGE_SECRET`, which the
dispatcher alone holds (docs/security.md#the-sip-edge). An edge is named by its control API's URL, as
`SIP_EDGE_URL` lists it, and holds two values derived for that name:

    its credential     vfe1.<edge URL, base64url>.<HMAC-SHA256 tag, base64url>   edge -> dispatcher
    its control key    vfc1.<edge URL, base64url>.<HMAC-SHA256 tag, base64url>   dispatcher -> edge

The edge presents its credential as a Bearer token on the dispatcher's edge routes
(dispatcher/api/routers/trunk_calls.py) and in `X-Voicefleet-Edge-Secret` on an inbound call's priced
`POST /start` (dispatcher/usage/trunk_line.py); the dispatcher recomputes the tag for the URL it names and
compares in constant time. The dispatcher presents the control key to that edge's control API, which compares
it with its own copy. Each label keys its own HMAC: an edge's host, which faces the internet's SIP traffic,
holds nothing that speaks for another edge, nor for the dispatcher to another edge. Never logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_text

VARIABLE = "SIP_EDGE_SECRET"  # noqa: S105 - the variable's name
HEADER = "X-Voicefleet-Edge-Secret"
MIN_SECRET_CHARS = 32
EDGE_PREFIX, CONTROL_PREFIX = "vfe1", "vfc1"
_LABELS = {EDGE_PREFIX: b"voicefleet sip edge credential v1", CONTROL_PREFIX: b"voicefleet sip edge control v1"}
MAX_NAME_CHARS = 512  # the edge's control_url's own bound (sipedge/config.py)
DOCS = "docs/sip.md#edge-credentials"


def edge_name(url: str) -> str:
    """An edge's name as its credentials carry it: its control URL as SIP_EDGE_URL lists it (lower-cased, no `/`)."""
    return url.strip().rstrip("/").lower()


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
            raise SettingsError(f"{said}{VARIABLE} must be at least {MIN_SECRET_CHARS} characters (the deployment "
                                f"secret each SIP edge's credentials are derived from: {DOCS})")
        return cls(secret)

    def edge_credential(self, url: str) -> str:
        """What the edge at `url` presents to the dispatcher (its `edge_credential_env`)."""
        return self._derived(EDGE_PREFIX, edge_name(url))

    def control_credential(self, url: str) -> str:
        """What the dispatcher presents to the edge at `url` (the edge's `control_secret_env`)."""
        return self._derived(CONTROL_PREFIX, edge_name(url))

    def edge_of(self, given: str | None) -> str | None:
        """The edge a presented credential (a header's value, `Bearer ` or not) is genuinely for; None otherwise."""
        parts = (given or "").removeprefix("Bearer ").split(".")
        if len(parts) != 3 or parts[0] != EDGE_PREFIX or len(parts[1]) > 2 * MAX_NAME_CHARS:
            return None
        try:
            name = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not hmac.compare_digest(self._tag(EDGE_PREFIX, name).encode(), parts[2].encode("utf-8", "surrogateescape")):
            return None
        return name

    def is_shared_secret(self, given: str | None) -> bool:
        """Whether `given` is the deployment secret itself: what an edge of an earlier release presents."""
        return hmac.compare_digest((given or "").removeprefix("Bearer ").encode("utf-8", "surrogateescape"),
                                   self.secret.encode())

    def refusal(self, given: str | None) -> str:
        """Why a request without a genuine edge credential is refused, naming the way out."""
        if self.is_shared_secret(given):
            return ("this request presents SIP_EDGE_SECRET itself, which no SIP edge holds any longer: each edge "
                    "presents a credential derived for its own control URL (its edge_credential_env) and checks "
                    f"another (its control_secret_env). Upgrade the edge and give it both ({DOCS})")
        return (f"present the SIP edge's own credential (its edge_credential_env, derived from SIP_EDGE_SECRET for "
                f"its control URL: {DOCS})")

    def _derived(self, prefix: str, name: str) -> str:
        if not name or len(name) > MAX_NAME_CHARS:
            raise ValueError(f"an edge's credential is derived for its control URL, not {name[:80]!r}")
        return f"{prefix}.{_b64(name.encode())}.{self._tag(prefix, name)}"

    def _tag(self, prefix: str, name: str) -> str:
        # A key for each direction: the deployment secret itself signs nothing.
        key = hmac.new(self.secret.encode(), _LABELS[prefix], hashlib.sha256).digest()
        return _b64(hmac.new(key, name.encode("utf-8", "surrogateescape"), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

"""Where the shared model service is and how often its capacity is read (MODEL_SERVICE_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dispatcher.outbound.http_failure import shown_target
from voicefleet_settings.read import SettingsError, setting_float, setting_text

CAPACITY_PATH = "/api/capacity"  # answers {"free": n, "total": N} (docs/converged.md)


@dataclass(frozen=True)
class ModelServiceSettings:
    url: str  # the service's base URL: bots open `/api/chat` on it, the dispatcher reads CAPACITY_PATH
    read_seconds: float = 2.0  # how often the capacity is read
    connect_seconds: float = 10.0  # how long an admitted start counts against the free streams by itself

    @property
    def shown(self) -> str:
        """The service as errors and /status name it: never a password or a query string in its URL."""
        return shown_target(self.url) or self.url

    @property
    def capacity_url(self) -> str:
        return self.url + CAPACITY_PATH

    @property
    def timeout_seconds(self) -> float:
        """One read's deadline: a service that cannot answer within a second is as good as down."""
        return min(1.0, self.read_seconds)

    @property
    def stale_seconds(self) -> float:
        """Past this age, the last answer says nothing: three reads missed in a row."""
        return 3 * self.read_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelServiceSettings | None:
        """None without MODEL_SERVICE_URL: no bot of this dispatcher uses a shared model service."""
        url = setting_text(env, "MODEL_SERVICE_URL").rstrip("/")
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            written = url.rsplit("@", 1)[-1][:80]  # as written (no scheme to read it by), less any password
            raise SettingsError(f"MODEL_SERVICE_URL={written!r} must be an http:// or https:// URL "
                                "of the model service, e.g. http://moshi.internal:8998")
        if parts.query or parts.fragment:  # the paths are appended to it: a query would swallow them
            raise SettingsError(f"MODEL_SERVICE_URL={shown_target(url)[:80]!r} must be a base URL without a query "
                                "or fragment: the service's paths (/api/capacity, /api/chat) are added to it")
        return cls(url, read_seconds=setting_float(env, "MODEL_SERVICE_READ_SECONDS"),
                   connect_seconds=setting_float(env, "MODEL_SERVICE_CONNECT_SECONDS"))

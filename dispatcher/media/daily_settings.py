"""Daily's settings (DailySettings), apart from its rooms' client (daily.py) so that reading them, as
`voicefleet config check` does, imports no HTTP client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.media.daily_bucket import parse_recordings_bucket
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_bool, setting_float, setting_int, setting_text

DEFAULT_API_URL = "https://api.daily.co/v1"
# https://docs.daily.co/docs/rest-api/authentication: most endpoints 20 req/s; room deletes ~2/s.
DEFAULT_RATE = Rate(per_second=20, burst=20)
DEFAULT_DELETE_RATE = Rate(per_second=2, burst=2, max_wait=15.0)  # off the critical path: may queue


@dataclass(frozen=True)
class DailySettings:
    api_key: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    room_prefix: str = "vf-"
    bot_join_seconds: int = 600  # a Fargate/GCE cold start can take minutes before the bot joins
    user_join_seconds: int = 300
    timeout: float = 5.0  # per HTTP call
    retry_deadline: float = 8.0  # all attempts of one operation
    rate: Rate = DEFAULT_RATE
    delete_rate: Rate = DEFAULT_DELETE_RATE
    allow_dialout: bool = False  # DAILY_ALLOW_DIALOUT=1: a caller may ask for `enable_dialout` (it costs money)
    # DAILY_RECORDINGS_BUCKET: Daily's `recordings_bucket` object; None: no cloud recording here.
    recordings_bucket: Mapping[str, Any] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DailySettings:
        key = setting_text(env, "DAILY_API_KEY")
        if not key:
            raise SettingsError("DAILY_API_KEY must be set for cloud sessions (Daily rooms)")
        prefix = setting_text(env, "DAILY_ROOM_PREFIX")
        if not all(c.isalnum() or c in "-_" for c in prefix):
            raise SettingsError(f"DAILY_ROOM_PREFIX={prefix!r} may hold only letters, digits, - and _")
        return cls(
            api_key=key,
            api_url=(setting_text(env, "DAILY_API_URL")).rstrip("/"),
            room_prefix=prefix,
            bot_join_seconds=setting_int(env, "DAILY_BOT_JOIN_SECONDS"),
            user_join_seconds=setting_int(env, "DAILY_USER_JOIN_SECONDS"),
            timeout=setting_float(env, "DAILY_TIMEOUT_SECONDS"),
            retry_deadline=setting_float(env, "DAILY_RETRY_DEADLINE_SECONDS"),
            rate=Rate.from_env(env, "DAILY"),
            delete_rate=Rate.from_env(env, "DAILY_DELETE"),
            allow_dialout=setting_bool(env, "DAILY_ALLOW_DIALOUT"),
            recordings_bucket=parse_recordings_bucket(setting_text(env, "DAILY_RECORDINGS_BUCKET")),
        )

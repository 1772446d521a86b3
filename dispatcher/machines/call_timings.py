"""A machines API client's own timings, read alike for every provider: `{PREFIX}_TIMEOUT_SECONDS`
(one call), `{PREFIX}_RETRY_DEADLINE_SECONDS` (a call and its retries, in all) and
`{PREFIX}_POLL_SECONDS` (between two status reads while a machine starts), each with its catalogue
entry's default and bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from voicefleet_settings.read import setting_float


class CallTimings(TypedDict):
    timeout: float
    retry_deadline: float
    poll_seconds: float


def call_timings(env: Mapping[str, str], prefix: str) -> CallTimings:
    """The three as keyword arguments of a provider's settings dataclass (fields `timeout`,
    `retry_deadline` and `poll_seconds`)."""
    return CallTimings(
        timeout=setting_float(env, f"{prefix}_TIMEOUT_SECONDS"),
        retry_deadline=setting_float(env, f"{prefix}_RETRY_DEADLINE_SECONDS"),
        poll_seconds=setting_float(env, f"{prefix}_POLL_SECONDS"),
    )

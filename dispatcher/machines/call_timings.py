"""A machines API client's own timings, read alike for every provider: `{PREFIX}_TIMEOUT_SECONDS`
(one call), `{PREFIX}_RETRY_DEADLINE_SECONDS` (a call and its retries, in all) and
`{PREFIX}_POLL_SECONDS` (between two status reads while a machine starts), each defaulting to the
provider's settings class's own value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from dispatcher.settings import float_setting


class CallTimings(TypedDict):
    timeout: float
    retry_deadline: float
    poll_seconds: float


def call_timings(env: Mapping[str, str], prefix: str, defaults: type[Any]) -> CallTimings:
    """The three as keyword arguments of the settings dataclass `defaults`, whose fields `timeout`,
    `retry_deadline` and `poll_seconds` hold the defaults."""
    return CallTimings(
        timeout=float_setting(env, f"{prefix}_TIMEOUT_SECONDS", defaults.timeout, minimum=0.1),
        retry_deadline=float_setting(env, f"{prefix}_RETRY_DEADLINE_SECONDS", defaults.retry_deadline, minimum=0.1),
        poll_seconds=float_setting(env, f"{prefix}_POLL_SECONDS", defaults.poll_seconds, minimum=0.05),
    )

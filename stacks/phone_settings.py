"""Draining sized for phone calls, which the dispatcher relays for as long as they last.

A call is one WebSocket from the carrier and one from its bot, each open for the whole call
(at most `maxSessionSeconds`, after its start). A deploy must let them end: the ALB drains a
replaced task for its target group's deregistration delay before ECS stops it (docs/phone.md).
On Cloud Run the request timeout already outlives an idle bot plus its session (a call needs the
bot channel, so it is on), which covers a call.
"""

from __future__ import annotations

ALB_MAX_DEREGISTRATION_DELAY = 3600  # seconds (the target group attribute's maximum)
FARGATE_MAX_STOP_TIMEOUT = 120  # seconds (ContainerDefinition.stopTimeout's maximum on Fargate)
CALL_START_MARGIN_SECONDS = 60  # a call's start (claim, or a cold launch's wait) before its audio


def deregistration_delay(max_session_seconds: int) -> int:
    """How long a replaced dispatcher task keeps relaying the calls it took."""
    return min(ALB_MAX_DEREGISTRATION_DELAY, max_session_seconds + CALL_START_MARGIN_SECONDS)


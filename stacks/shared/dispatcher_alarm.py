"""The alarm every cloud stack raises when its dispatcher is down: the one that still speaks when the
dispatcher's own metric lines stop, since every other alarm (the SIP edge's included) reads those lines and
goes without data then. Each cloud reads its own signal (AWS: the load balancer's healthy targets; GCP and
Azure: the lines themselves going missing); this module holds what the three say alike. docs/operations.md
("The alarms") is what the words point at."""

from __future__ import annotations

DISPATCHER_DOWN = "dispatcher-down"  # the alarm's name after the stack's prefix
# Lines are written every 60 s, and a cloud's log pipeline may hold one back for a minute or two
# (Cloud Logging's and Log Analytics' ingestion): five minutes without any is not a late line.
LINES_MISSING_MINUTES = 5


def dispatcher_down_description(signal: str, minutes: int) -> str:
    """The alarm's description: `signal` is what went missing (or to zero) for `minutes`."""
    return (f"No dispatcher of this stack is up: {signal} for {minutes} minutes. Nothing starts a bot, and the "
            "store and SIP edge alarms, which read the dispatcher's lines, stay silent meanwhile. The service's "
            "events and the dispatcher's logs say why; what to do: docs/operations.md#the-alarms.")

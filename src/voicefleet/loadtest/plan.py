"""When the load test places its sessions: a constant arrival rate for a duration, as k6's
`constant-arrival-rate` does, so a slow dispatcher is not offered less load (no coordinated
omission). Session i is due at i / rate seconds; a session due while `concurrency` are still under
way is not placed and counted as dropped; no more than `max_sessions` are ever planned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import click

PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_SESSIONS_CEILING = 10_000  # what one generator process places in one run, at most
MAX_CONCURRENCY = 1_000  # sessions under way at once from one process (each a peer connection or a socket)


@dataclass(frozen=True)
class Plan:
    rate: float  # sessions a second
    concurrency: int
    duration: float  # seconds
    max_sessions: int

    @property
    def sessions(self) -> int:
        """How many sessions the plan places: every one due before the end."""
        return max(1, math.ceil(self.duration * self.rate - 1e-9))

    def due(self, index: int) -> float:
        """Seconds from the run's start at which session `index` (from 0) is due."""
        return index / self.rate


def rate(text: str) -> float:
    """`5/min`, `1/s`, `30/h`: sessions a second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", text.lower())
    if match is None or match.group(2) not in PER or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a rate: a number of sessions per s, min or h, such as 5/min")
    return float(match.group(1)) / PER[match.group(2)]


def duration(text: str) -> float:
    """`2m`, `90s`, `1h`, `1m30s` or plain seconds."""
    cleaned = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", cleaned)
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif parts and "".join(n + u for n, u in parts) == cleaned:
        seconds = sum(float(n) * UNITS[u] for n, u in parts)
    else:
        seconds = 0.0
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is not a duration: such as 90s, 2m or 1m30s")
    return seconds


def checked(plan: Plan) -> Plan:
    """The plan, or a usage error when it would place more sessions than `--max-sessions` allows."""
    if plan.sessions > plan.max_sessions:
        raise click.UsageError(
            f"{plan.duration:g} s at {plan.rate * 60:g}/min places {plan.sessions} sessions, over --max-sessions "
            f"{plan.max_sessions}: shorten --duration, lower --rate, or raise --max-sessions (each session is a "
            f"machine the deployment starts and pays for)")
    return plan

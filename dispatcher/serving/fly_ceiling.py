"""The concurrency ceiling `voicefleet config check` notes for `MACHINES=fly`, which no stack deploys (the
stacks' plan says every other provider's: docs/operations.md, "Your ceiling and how to raise it").

One fresh machine per session makes creates a second the sessions a second. Fly limits creates per app,
about 1 a second with a burst of 3 (Fly staff: community.fly.io/t/understanding-fly-io-api-rate-hard-limits/
20636), so the ceiling is the apps creates spread over (`FLY_APP` and `FLY_APPS`) × the lower of that and
`FLY_CREATE_RATE` × a session's length (Little's law). The length is not a dispatcher setting: the stacks'
`expectedCallMinutes` default, 4 minutes, is counted and said."""

from __future__ import annotations

import math
from collections.abc import Mapping

from voicefleet_settings.read import setting_choice, setting_float, setting_int, setting_text

FLY_CREATES_PER_SECOND = 1.0  # per app
CALL_MINUTES = 4  # the stacks' expectedCallMinutes default


def notes(env: Mapping[str, str]) -> list[str]:
    """`note: …` with the ceiling, and `warning: …` when MAX_CONCURRENT_SESSIONS is above it; none off Fly."""
    if setting_choice(env, "MACHINES") != "fly":
        return []
    listed = (app.strip() for app in setting_text(env, "FLY_APPS").split(","))
    apps = len(dict.fromkeys((setting_text(env, "FLY_APP"), *(app for app in listed if app))))
    paced = setting_float(env, "FLY_CREATE_RATE")
    rate = min(FLY_CREATES_PER_SECOND, paced)
    by = "FLY_CREATE_RATE" if paced < FLY_CREATES_PER_SECOND else "Fly's limit, about 1 a second per app"
    per_app = math.floor(rate * CALL_MINUTES * 60 + 1e-9)
    ceiling = apps * per_app
    lines = [f"note: concurrency ceiling (Fly Machines): {ceiling:,} sessions at once: {apps} "
             f"app{'s' if apps > 1 else ''} (FLY_APP, FLY_APPS) × {rate:g} creates a second ({by}) × "
             f"{CALL_MINUTES}-minute calls, the stacks' default length (docs/operations.md, \"Your ceiling and how "
             "to raise it\")"]
    sessions = setting_int(env, "MAX_CONCURRENT_SESSIONS")
    if sessions > ceiling:
        # FLY_APP is one of the apps counted: say the total and how many more to list, never a bare count
        # one could read as FLY_APPS's alone.
        needed = math.ceil(sessions / per_app) if per_app else 0
        more = (f"Each app adds {per_app:,}: FLY_APP and FLY_APPS together must name {needed:,} different apps "
                f"(list {needed - apps:,} more in FLY_APPS)" if per_app else "Raise FLY_CREATE_RATE")
        lines.append(f"warning: MAX_CONCURRENT_SESSIONS={sessions:,} is above the {ceiling:,} sessions Fly's creates "
                     f"hold at once: past it starts wait for a create and fail. {more}, or lower "
                     "MAX_CONCURRENT_SESSIONS")
    return lines

"""Fly's create limit is per app (1 create/s, burst 3): a deployment that needs more creates
spreads them over several apps (`FLY_APPS`), each app's limit counted once for the deployment
(`Coordination.create_limit`, `fly:<app>`), by the implementation every provider shares
(dispatcher/machines/creates.py).

- A session's cold machine goes to one app chosen by its session id (a stable hash), so a retry
  with the same key meets its machine's name again in the same app (409, then found) instead of
  creating a second machine in another app.
- A reserve machine goes to whichever app has a spare token (its name is a fresh bot id): a refill
  takes the token, and the launch that follows creates its machine in that app.
- What a cold launch would wait (for the honest quote) is the slowest app's wait, the refills'
  spare tokens are every app's.
"""

from __future__ import annotations

from dispatcher.machines.creates import Creates
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import Coordination


def app_creates(apps: tuple[str, ...], coordination: Coordination, rate: Rate) -> Creates:
    """Each of `apps`' create limits, counted once for the deployment."""
    if not apps:
        raise ValueError("creates need at least one app")
    return Creates("fly", coordination, rate, groups=apps)

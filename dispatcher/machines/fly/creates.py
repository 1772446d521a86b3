"""Fly's create limit is per app (1 create/s, burst 3): a deployment that needs more creates
spreads them over several apps (`FLY_APPS`), each app a cell (dispatcher/machines/cells.py) whose
create limit is counted once for the deployment (`Coordination.create_limit`, `fly:<app>`).

- A session's cold machine goes to one app chosen by its session id (a stable hash), so a retry
  with the same key meets its machine's name again in the same app (409, then found) instead of
  creating a second machine in another app. It never goes elsewhere (`spread=False`): the bot's
  Machine OIDC token names its app, and the channel expects the session's own.
- An app is never drained: its sessions could go nowhere else, and a create that answers 429 is
  retried with backoff as every Fly call is (then `fly_throttled`, 503), so a retry once Fly
  recovers creates at once.
- A reserve machine goes to whichever app has a spare token (its name is a fresh bot id): a refill
  takes the token, and the launch that follows creates its machine in that app.
- What a cold launch would wait (for the honest quote) is the slowest app's wait, the refills'
  spare tokens are every app's.
"""

from __future__ import annotations

from dispatcher.machines.cells import Cells
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import Coordination


def app_cells(apps: tuple[str, ...], coordination: Coordination, rate: Rate) -> Cells:
    """Each of `apps` a cell, its create limit counted once for the deployment."""
    if not apps:
        raise ValueError("creates need at least one app")
    return Cells("fly", coordination, rate, apps, spread=False)

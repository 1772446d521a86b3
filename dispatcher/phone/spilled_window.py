"""How long the region a spilled call's edge reached may take asking that edge: within the asking region's wait.

The region holding the session waits for a transfer what it gives its own edge (sip_transfers.py `BACKOFF`,
`WARM_BACKOFF`) and says, in each signed ask, how much of that wait is left (`seconds_left`). The region the
edge reached asks its edge within that less HOP_SECONDS (the ask's way there and the answer's way back), and
never longer than its own cap (`edge_window`), so its answer arrives while the asker still waits for it, a
retry's included. An ask leaving it less than LEAST_WINDOW_SECONDS is refused before the edge is asked
(`transfer_window_too_small`): no edge settles a hand-over that fast, and an ask cut short would leave the
outcome unknown; the asker sends none such (`may_ask`). An ask without `seconds_left` (from a region of the
release before) gets the cap, as that release gave it.
"""

from __future__ import annotations

from dispatcher.outbound.retry import Backoff
from dispatcher.phone.sip_transfers import BACKOFF, WARM_BACKOFF

HOP_SECONDS = 2.0  # of the asker's wait, kept for the way to the call's region and its answer's way back
LEAST_WINDOW_SECONDS = 5.0  # the least the call's region is left to ask its edge in


def backoff_of(warm: bool) -> Backoff:
    """The asking region's wait for a transfer: the one it gives its own edge."""
    return WARM_BACKOFF if warm else BACKOFF


def edge_window(warm: bool) -> float:
    """The most the call's region takes asking its edge: a whole wait less the hops (under one try's wait,
    `answer_seconds`, so that it alone ends the region's ask: sip_transfers.py `ask`)."""
    return backoff_of(warm).deadline - HOP_SECONDS


def window_of(seconds_left: float | None, warm: bool) -> float:
    """How long the call's region may take asking its edge for an ask with `seconds_left` of its asker's wait."""
    cap = edge_window(warm)
    return cap if seconds_left is None else min(cap, seconds_left - HOP_SECONDS)


def may_ask(seconds_left: float) -> bool:
    """Whether an ask with `seconds_left` of its asker's wait leaves the call's region time to ask its edge."""
    return seconds_left - HOP_SECONDS >= LEAST_WINDOW_SECONDS

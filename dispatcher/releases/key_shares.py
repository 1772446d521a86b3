"""No one key decides a canary's verdict: in a canary's sample each key's sessions count at most
KEY_SHARE_SLACK times its share of the two releases' recent sessions (the draw splits an honest
key's sessions by weight, so its share is about the same on both sides). A key whose sessions
crowd onto the canary (a draw it could foresee, its configured release) counts its newest ones
only. Why this bound and not another: docs/releases.md, "Automatic rollback"."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from dispatcher.releases.health_window import Entry

# Twice its share: a key's honest share on the canary wanders around its share of the traffic (a
# binomial draw) and is rarely cut; a key with none of the stable's sessions keeps a few.
KEY_SHARE_SLACK = 2.0


def within_key_shares(ours: Sequence[Entry], theirs: Sequence[Entry]) -> list[Entry] | None:
    """The canary's entries (`ours`, oldest first) with each key's cut to its bound, or None when
    no key is past it. `theirs`: the stable release's recent entries. Entries without a key are kept."""
    mine = Counter(entry[5] for entry in ours if entry[5] is not None)
    stable = Counter(entry[5] for entry in theirs if entry[5] is not None)
    total = len(ours) + len(theirs)
    allowed = {key: math.ceil(KEY_SHARE_SLACK * (n + stable[key]) / total * len(ours)) for key, n in mine.items()}
    if all(n <= allowed[key] for key, n in mine.items()):
        return None
    counted: Counter[str] = Counter()
    kept: list[Entry] = []
    for entry in reversed(ours):  # each key's newest sessions are the ones kept
        key = entry[5]
        if key is not None:
            if counted[key] >= allowed[key]:
                continue
            counted[key] += 1
        kept.append(entry)
    kept.reverse()
    return kept

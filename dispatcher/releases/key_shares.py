"""No one key decides a verdict: in each release's sample, the canary's and the stable's, each key's
sessions count at most KEY_SHARE_SLACK times its share of the traffic, both releases' sessions over
the same hours (the draw splits an honest key's sessions by weight, so its share of each release is
about its share of the traffic). A key whose sessions crowd onto one release (its configured
release) counts its newest ones only. Why this bound and not another: docs/releases.md,
"Automatic rollback"."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from dispatcher.releases.health_window import Entry

# Twice its share: a key's honest share of one release wanders around its share of the traffic (a
# binomial draw) and is rarely cut.
KEY_SHARE_SLACK = 2.0


def within_key_shares(ours: Sequence[Entry], theirs: Sequence[Entry]) -> list[Entry] | None:
    """`ours` (one release's entries, oldest first) with each key's cut to its bound, or None when
    no key is past it. `theirs`: the other release's entries over the same hours (not its last so
    many: a full window of each would take a key crowding one release for half the traffic).
    Entries without a key are kept."""
    mine = Counter(entry.key for entry in ours if entry.key is not None)
    if not mine:
        return None
    other = Counter(entry.key for entry in theirs if entry.key is not None)
    scale = KEY_SHARE_SLACK * len(ours) / (len(ours) + len(theirs))
    allowed = {key: math.ceil(scale * (n + other[key])) for key, n in mine.items()}
    if all(n <= allowed[key] for key, n in mine.items()):
        return None
    counted: Counter[str] = Counter()
    kept: list[Entry] = []
    for entry in reversed(ours):  # each key's newest sessions are the ones kept
        key = entry.key
        if key is not None:
            if counted[key] >= allowed[key]:
                continue
            counted[key] += 1
        kept.append(entry)
    kept.reverse()
    return kept

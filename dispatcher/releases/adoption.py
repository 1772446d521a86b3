"""What a region takes of a traffic record another region made (live.py's `adopt`).

A record another region sends is signed with the shared REGION_SECRET, which is not an admin key:
it may carry the weights an admin set there, never more than an admin here may do. So:

- a record that gives traffic to a release whose smoke session has not passed *here* is refused
  (what `PUT /releases/NAME` answers an admin here), except as the verdict of the smoke session this
  region holds as running: its `passed`, with that session's id;
- the releases listed and their generation stay this region's own: its own stack decides which
  releases exist here, and its next reading fits the weights to them (`Traffic.reconciled`). Taken
  from a peer, a generation ahead of this region's list would stop that fitting for good;
- this region's audit line names the region the record came from beside the admin it names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.releases.traffic import Traffic, as_changed


def untested_raise(here: Traffic, offered: Traffic) -> ApiError | None:
    """The refusal of `offered` when it raises a release whose smoke has not passed in `here`."""
    for name, weight in offered.weights.items():
        smoke = here.smoke_of(name)
        if weight <= here.weights.get(name, 0) or smoke.passed:
            continue
        verdict = offered.smoke.get(name)
        if smoke.status == "running" and verdict is not None and verdict.passed and (
                verdict.session_id == smoke.session_id):
            continue  # the smoke session's own verdict, given in the region that runs it
        shown = f"its smoke session {smoke.session_id} is running" if smoke.status == "running" else (
            f"its smoke here is {smoke.status}")
        return ApiError(409, "release_not_smoke_tested", f"{name} has not passed its smoke session in this region "
                        f"({shown}), so no region's record gives it traffic here: run `voicefleet releases smoke "
                        f"{name}` against this region, then set its weight", extra={"release": name})
    return None


def as_adopted(here: Traffic, offered: Traffic) -> Traffic:
    """`offered` as this region keeps it: its weights, stable release, smoke states and who; this
    region's own list of releases and their generation."""
    return replace(offered, listed=here.listed, generation=here.generation)


def adoption_line(here: Traffic, adopted: Traffic, sender: str) -> dict[str, Any]:
    """This region's audit line for a record read from `sender`: `region <sender>: <who changed it>`."""
    return {**as_changed(here, adopted), "by": f"region {sender}: {adopted.changed_by}"}

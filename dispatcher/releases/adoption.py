"""What a region takes of a traffic record another region made (live.py's `adopt`).

A record another region sends is signed with the shared REGION_SECRET, which is not an admin key:
it may carry the weights an admin set there, never more than an admin here may do. So:

- a record that gives traffic to a release whose smoke session has not passed *here*, or says it
  passed, is refused (what `PUT /releases/NAME` answers an admin here), except as the verdict of the
  smoke session this region holds as running: its `passed`, with that session's id, read from the
  state answer of the region that gave it (at its `REGIONS` address), never pushed: whoever holds
  REGION_SECRET may push as any region, first a running smoke session and then its verdict. A
  verdict kept without a weight would open the gate to the next record's raise;
- so is one giving traffic or the stable place to a release this region does not list: it has no
  smoke state here (which reads as passed), and a rollback or the next fitting, not finding it,
  would send every start to another release, untested perhaps;
- the releases listed and their generation stay this region's own: its own stack decides which
  releases exist here, and its next reading fits the weights to them (`Traffic.reconciled`). Taken
  from a peer, a generation ahead of this region's list would stop that fitting for good;
- this region's audit line names the region the record came from beside the admin it names, whose
  words (who, why) are kept with any control character escaped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.observability.log_text import shown
from dispatcher.releases.traffic import MAX_TEXT_CHARS, Traffic, as_changed, unknown_release


def refusal_of(here: Traffic, offered: Traffic, *, from_its_maker: bool) -> ApiError | None:
    """Why `offered` is not taken over `here`, or None: it gives traffic (or the stable place) to a
    release this region does not list, or raises a release whose smoke has not passed here, or says
    such a release passed (a smoke entry dropped counts as passed), bar that smoke session's verdict
    as read from the region that gave it (`from_its_maker`)."""
    for name, weight in offered.weights.items():
        if name not in here.weights and (weight > 0 or name == offered.stable):
            return unknown_release(name, here.weights)
    for name, current in here.weights.items():
        if name not in offered.weights:  # not listed there: this region's next fitting adds it again, waiting
            continue
        smoke, told = here.smoke_of(name), offered.smoke_of(name)
        if smoke.passed or (offered.weights[name] <= current and not told.passed):
            continue
        its_verdict = smoke.status == "running" and told.passed and told.session_id == smoke.session_id
        if its_verdict and from_its_maker:
            continue  # the smoke session's own verdict, read from the region that runs it
        shown = f"its smoke session {smoke.session_id} is running" if smoke.status == "running" else (
            f"its smoke here is {smoke.status}")
        if its_verdict:
            return ApiError(409, "smoke_verdict_not_pushed", f"{name}'s smoke verdict is taken from the state of "
                            f"region {offered.version[1]} itself, which this region reads twice a second, never "
                            "from a push", extra={"release": name})
        return ApiError(409, "release_not_smoke_tested", f"{name} has not passed its smoke session in this region "
                        f"({shown}), so no region's record gives it traffic or a verdict here: run `voicefleet "
                        f"releases smoke {name}` against this region, then set its weight", extra={"release": name})
    return None


def as_adopted(here: Traffic, offered: Traffic) -> Traffic:
    """`offered` as this region keeps it: its weights, stable release, smoke states and who, that
    text escaped; this region's own list of releases and their generation."""
    return replace(offered, listed=here.listed, generation=here.generation, changed_by=_said(offered.changed_by),
                   reason=_said(offered.reason))


def _said(text: str) -> str:
    """Another region's words as one printable line: a carriage return, a newline or a terminal's
    escape in them would rewrite or add lines where an operator reads the trail."""
    return shown(text, MAX_TEXT_CHARS - 1)  # with its `…`, within a record's bound


def adoption_line(here: Traffic, adopted: Traffic, sender: str) -> dict[str, Any]:
    """This region's audit line for a record read from `sender`: `region <sender>: <who changed it>`."""
    return {**as_changed(here, adopted), "by": f"region {sender}: {adopted.changed_by}"}

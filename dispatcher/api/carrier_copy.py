"""Whether a call gets the carrier's own copy (PHONE_CARRIER_RECORDING), and where it is listed.

The recording policy rules it as it rules the bot-side recording: only a session whose audio
policy is `on` gets one. `consent` does not: the carrier records from the first second, before
any consent prompt. A webhook's call is the phone caller's, and its release is chosen when its
stream opens, after the carrier started recording: the webhook asks for a copy only when the phone
caller's policy is `on` whichever release the call gets; the status callback checks it again with
the release the session's timeline names, and links nothing a release rule turns off (the
timeline then names the recording, for the team to delete at the carrier).
"""

from __future__ import annotations

from typing import Any

from dispatcher.api.state import AppState
from dispatcher.artifacts.rules import Keeping
from dispatcher.phone.calls import PHONE_CALLER

CARRIER_RECORDING_READY = "carrier_recording_ready"
CARRIER_RECORDING_NOT_KEPT = "carrier_recording_not_kept"


def _policy(state: AppState, release: str | None) -> Keeping:
    artifacts = state.artifacts
    if artifacts is None or not artifacts.settings.on:
        return Keeping()
    rules = artifacts.settings.rules
    # No release yet (the webhook's answer), or none the timeline still names: the carrier records
    # from the first second, so every release the call could get must keep its audio.
    return rules.for_session(PHONE_CALLER, release) if release is not None else rules.for_any_release(PHONE_CALLER)


def carrier_copy_kept(state: AppState, carrier: str, release: str | None = None) -> bool:
    """The carrier records this call: it is configured to, and the policy keeps its audio."""
    return carrier in state.phone.settings.carrier_recording and _policy(state, release).audio == "on"


def requested_release(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("event") == "requested" and isinstance(event.get("release"), str):
            return str(event["release"])
    return None


def carrier_recordings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `carrier_recording` entries of `GET /sessions/{id}/artifacts`, from the timeline."""
    return [{"kind": "carrier_recording", **{k: v for k, v in event.items() if k not in ("event", "replica")}}
            for event in events if event.get("event") == CARRIER_RECORDING_READY]

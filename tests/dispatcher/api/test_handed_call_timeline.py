"""A call another region handed here: its session's timeline says where its webhook arrived and
why it came here, once the carrier's stream has started it (a call that came here itself does not)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.dispatcher.api.test_upgrade_auth import accepted
from tests.support.phone_dispatcher import Phone


async def events_of(phone: Phone, session_id: str, wanted: str) -> list[dict[str, Any]]:
    """The session's timeline once it holds `wanted` (or as it is after 10 s): written in the background."""
    timeline = phone.app.state.voicefleet.sessions.timeline
    for _ in range(200):
        events = await timeline.read(session_id)
        if any(event["event"] == wanted for event in events):
            break
        await asyncio.sleep(0.05)
    return events


async def test_a_handed_calls_timeline_names_the_region_its_webhook_reached_and_why(keyed: Phone) -> None:
    tokens = keyed.app.state.voicefleet.phone.tokens
    handed, _ = tokens.mint("twilio", handed_from=("eu", "cold_start_over_max_wait"))
    await accepted(keyed, keyed.ws(f"/ws/twilio/{handed}"))
    events = await events_of(keyed, keyed.launches[-1], "handed_off")
    (handoff,) = [event for event in events if event["event"] == "handed_off"]
    assert (handoff["from_region"], handoff["reason"], handoff["carrier"]) == ("eu", "cold_start_over_max_wait",
                                                                               "twilio")
    assert [event["event"] for event in events].index("requested") < events.index(handoff)

    own, _ = tokens.mint("twilio")  # the control: a call that came here itself
    await accepted(keyed, keyed.ws(f"/ws/twilio/{own}"))
    events = await events_of(keyed, keyed.launches[-1], "stop_requested")
    assert events and not [event for event in events if event["event"] == "handed_off"]

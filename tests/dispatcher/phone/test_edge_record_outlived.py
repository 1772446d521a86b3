"""A bridged transfer's person's leg may last PHONE_TRANSFER_TIME_LIMIT_SECONDS (3600 s by default) past the
bridge: an inbound call's `sip-edge:` record lasts that too (MAX_SESSION_SECONDS + the transfer's time limit +
HOLD_MARGIN from the start), so the edge's `ended` report on a long bridged leg still finds it, rather than being
refused 404 and the leg priced to its whole time limit."""

from __future__ import annotations

import time

from fastapi import FastAPI

from tests.dispatcher.phone.test_inbound_edge_record import A, app, bearer, client

__all__ = ["app"]  # the fixture, imported for this module's tests


async def test_a_bridged_leg_s_end_told_after_the_record_ran_out_is_still_taken(app: FastAPI) -> None:
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    limit = state.phone.settings.transfer_time_limit
    await state.trunk_calls.took_inbound("vf_bridged_long", A)
    state.sessions.timeline.note("vf_bridged_long", "requested")  # its timeline opens
    state.sessions.timeline.note("vf_bridged_long", "bridged_leg", leg="answered", trunk="twilio",
                                 direction="outbound", usd_per_minute=0.01, increment_seconds=60,
                                 time_limit_seconds=limit)
    await state.sessions.timeline.settled()
    late = state.settings.max_session_seconds + limit  # the session's longest life, then its leg's
    records._clock = lambda: time.monotonic() + late  # the leg's end, as late as it may come
    async with client(app) as api:
        told = await api.post("/edge/calls/vf_bridged_long/bridged", json={"event": "ended", "trunk": "twilio"},
                              headers=bearer(A))
    assert told.status_code == 204, told.text

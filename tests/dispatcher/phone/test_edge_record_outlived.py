"""A bridged transfer's person's leg may last PHONE_TRANSFER_TIME_LIMIT_SECONDS (3600 s by default) past the
bridge, yet an inbound call's `sip-edge:` record lasts MAX_SESSION_SECONDS + HOLD_MARGIN from the start (2400 s
by default): the edge's `ended` report on a long bridged leg then finds no record, is refused 404, and the leg
is priced to its whole time limit. Before the record was required, a session without one took the report."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI

from tests.dispatcher.phone.test_inbound_edge_record import A, app, bearer, client

__all__ = ["app"]  # the fixture, imported for this module's tests


@pytest.mark.xfail(strict=True, reason="the record's TTL does not cover a bridged leg's time limit (review finding)")
async def test_a_bridged_leg_s_end_told_after_the_record_ran_out_is_still_taken(app: FastAPI) -> None:
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    hold = state.trunk_calls._hold_seconds
    assert state.phone.settings.transfer_time_limit > hold  # the defaults: a leg may outlive the record
    await state.trunk_calls.took_inbound("vf_bridged_long", A)
    state.sessions.timeline.note("vf_bridged_long", "requested")  # its timeline opens
    state.sessions.timeline.note("vf_bridged_long", "bridged_leg", leg="answered", trunk="twilio",
                                 direction="outbound", usd_per_minute=0.01, increment_seconds=60,
                                 time_limit_seconds=state.phone.settings.transfer_time_limit)
    await state.sessions.timeline.settled()
    records._clock = lambda: time.monotonic() + hold + 1  # later: the leg still within its time limit
    async with client(app) as api:
        told = await api.post("/edge/calls/vf_bridged_long/bridged", json={"event": "ended", "trunk": "twilio"},
                              headers=bearer(A))
    assert told.status_code == 204, told.text

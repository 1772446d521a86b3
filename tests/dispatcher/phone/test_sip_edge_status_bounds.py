"""Hostile review of the dispatcher's reading of an edge's `GET /status` (dispatcher/phone/sip_edge_status.py):
an edge's valid answer is shown, not taken for a broken one, and what an edge says is shown as one line."""

from __future__ import annotations

import pytest

from dispatcher.phone.sip_edge_status import MAX_TRUNKS, SipEdgeStatus
from dispatcher.phone.sip_edges import SipEdges
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_sip_edge_status import EDGE_STATUS, SECRET, StandInEdge


@pytest.mark.xfail(strict=True, reason="MAX_TRUNKS is said to cut the list ('more is shown cut'), but it is a "
                   "pydantic max_length: an edge whose file lists more trunks (sipedge/config.py caps none) is "
                   "shown as not answering and its voicefleet_sip_edge_answering gauge set to 0")
async def test_an_edge_with_more_trunks_than_shown_is_answering_with_its_trunks_cut() -> None:
    trunks = [{"name": f"customer-{index}", "registration": "not_registering"} for index in range(MAX_TRUNKS + 1)]
    async with StandInEdge(SECRET, {**EDGE_STATUS, "trunks": trunks}) as edge:
        edges = SipEdges((edge.url,), SECRET, timeout=5.0, max_answer_bytes=65536, records=LocalFirstClaims())
        try:
            (read,) = await SipEdgeStatus(edges).read()
        finally:
            await edges.aclose()
    assert read["answering"] is True, read
    assert len(read["trunks"]) == MAX_TRUNKS

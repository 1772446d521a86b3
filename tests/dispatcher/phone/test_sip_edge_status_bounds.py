"""Hostile review of the dispatcher's reading of an edge's `GET /status` (dispatcher/phone/sip_edge_status.py):
an edge's valid answer is shown, not taken for a broken one, and what an edge says is shown as one line."""

from __future__ import annotations

from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edge_status import MAX_TRUNKS, SipEdgeStatus
from dispatcher.phone.sip_edges import SipEdges
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_sip_edge_status import EDGE_STATUS, SECRET, StandInEdge


async def test_an_edge_with_more_trunks_than_shown_is_answering_with_its_trunks_cut() -> None:
    trunks = [{"name": f"customer-{index}", "registration": "not_registering"} for index in range(MAX_TRUNKS + 1)]
    async with StandInEdge(SECRET, {**EDGE_STATUS, "trunks": trunks}) as edge:
        edges = SipEdges((edge.url,), EdgeSecret(SECRET), timeout=5.0, max_answer_bytes=65536,
                         records=LocalFirstClaims())
        try:
            (read,) = await SipEdgeStatus(edges).read()
        finally:
            await edges.aclose()
    assert read["answering"] is True, read
    assert len(read["trunks"]) == MAX_TRUNKS and read["trunks_cut"] == 1


async def test_an_edges_message_is_kept_as_one_escaped_line() -> None:
    said = "maintenance\n  sip edge http://10.0.0.9:5080  answering\x1b]52;c;aGk=\x07"
    async with StandInEdge(SECRET, {"error": {"code": "busy", "message": said}}, code=503) as edge:
        edges = SipEdges((edge.url,), EdgeSecret(SECRET), timeout=5.0, max_answer_bytes=65536,
                         records=LocalFirstClaims())
        try:
            (read,) = await SipEdgeStatus(edges).read()
        finally:
            await edges.aclose()
    assert read["answering"] is False and read["error"].isprintable(), read
    assert read["error"] == "503: maintenance\\n  sip edge http://10.0.0.9:5080  answering\\x1b]52;c;aGk=\\x07"

"""Hostile review of `voicefleet status`'s SIP EDGES part (src/voicefleet/status.py): an edge's `error` is the
message any server at a SIP_EDGE_URL address answered (dispatcher/phone/sip_edge_status.py keeps up to 200
characters of its JSON `error.message`, control characters and all), so it must stay on its edge's line."""

from __future__ import annotations

from tests.cli.test_status_report import BODY
from voicefleet.status import report
from voicefleet.tables import printable_lines

FORGED = "  sip edge http://10.0.0.9:5080  answering  0/54 calls  trunk pbx registered"


def test_an_edges_message_cannot_print_a_line_of_its_own() -> None:
    edges = [{"url": "http://10.0.0.7:5080", "answering": False, "error": f"503: maintenance\n{FORGED}"}]
    printed = printable_lines(report({**BODY, "sip_edges": edges})).splitlines()
    assert FORGED not in printed
    assert sum(line.startswith("  sip edge ") for line in printed) == 1


def test_an_edge_whose_trunks_were_cut_says_how_many_are_not_shown() -> None:
    edges = [{"url": "http://10.0.0.7:5080", "answering": True, "ready": True, "trunks_cut": 3,
              "calls": {"in_progress": 0, "free": 54, "total": 54}, "trunks": []}]
    printed = report({**BODY, "sip_edges": edges}).splitlines()
    assert "  sip edge http://10.0.0.7:5080  answering  0/54 calls  3 more trunks not shown" in printed

"""PJSIP's log entries in the edge's log (sipedge/pjsip_log.py): a malformed packet's entry, which PJSIP follows
with the packet itself, keeps its first line alone, escaped and bounded, and a flood of them costs
LOGGED_PER_PERIOD lines a sender and one count a period. The whole edge under a fuzzed corpus:
tests/sip/test_fuzzed_corpus.py."""

from __future__ import annotations

import logging

import pytest

from sipedge.pjsip_log import LINE_MOST, LOGGED_PER_PERIOD, MOST_SENDERS, PjsipLog

PACKET_ENTRY = ("09:39:49.717         sip_endpoint.c  Error processing packet from 127.0.0.2:37137: Missing required "
                "header(s) (PJSIP_EMISSINGHDR)  Via [code 171050]:\nOPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
                "2026-12-03 09:39:50,000 INFO sipedge sipedge: ready\r\n\r\n-- end of packet.\n")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for record in caplog.records for line in record.getMessage().splitlines()]


def test_a_packets_entry_keeps_pjsips_first_line_alone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        PjsipLog().write(PACKET_ENTRY)
    assert lines(caplog) == [PACKET_ENTRY.split("\n", 1)[0].join(("pjsip: ", ""))]


def test_control_characters_are_escaped_and_a_long_line_cut(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        PjsipLog().write("Bad header \x1b[2J\x00 caf\xe9 \u2028" + "A" * 5000 + "\n")
    [line] = lines(caplog)
    assert line.startswith("pjsip: Bad header \\x1b[2J\\x00 caf\xe9 \\u2028AAA"), line
    assert len(line.encode()) < LINE_MOST


def test_a_flood_costs_a_few_lines_and_one_count_a_period(caplog: pytest.LogCaptureFixture) -> None:
    bounded = PjsipLog()
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        for _ in range(1000):
            bounded.write(PACKET_ENTRY)
        bounded.end_period()
        bounded.write(PACKET_ENTRY)  # the next period logs again
        bounded.end_period()  # nothing counted: no count line
    logged = lines(caplog)
    assert len(logged) == LOGGED_PER_PERIOD + 2, logged
    assert logged[LOGGED_PER_PERIOD] == (f"sipedge: {1000 - LOGGED_PER_PERIOD} more of PJSIP's log entries this "
                                         f"period were only counted (sip_endpoint.c {1000 - LOGGED_PER_PERIOD})")
    assert logged[-1].startswith("pjsip: ")


MEDIA_ERROR = "09:50:34.845    pjsua_media.c  ...RTP socket bind() at 127.0.0.1:29913 error: Address already in use"


def test_a_flood_of_bad_packets_hides_no_error_of_another_part(caplog: pytest.LogCaptureFixture) -> None:
    """The malformed packets' entries (sip_endpoint.c's) are counted past their share; a media failure
    logged meanwhile (pjsua_media.c's) is logged in full."""
    bounded = PjsipLog()
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        for _ in range(500):
            bounded.write(PACKET_ENTRY)
        bounded.write(MEDIA_ERROR)
        bounded.end_period()
    logged = lines(caplog)
    assert f"pjsip: {MEDIA_ERROR}" in logged, logged
    assert logged[-1].endswith(f"(sip_endpoint.c {500 - LOGGED_PER_PERIOD})"), logged


def test_senders_past_the_bound_share_one_count(caplog: pytest.LogCaptureFixture) -> None:
    bounded = PjsipLog()
    with caplog.at_level(logging.WARNING, logger="sipedge"):
        for n in range(MOST_SENDERS + 5):
            for _ in range(LOGGED_PER_PERIOD + 1):
                bounded.write(f"09:00:00.000   part{n}.c  an error")
        bounded.write("no decoration at all")
        bounded.end_period()
    logged = lines(caplog)
    assert len(logged) == (MOST_SENDERS + 1) * LOGGED_PER_PERIOD + 1, len(logged)
    assert logged[-1].endswith(f"(other {5 * (LOGGED_PER_PERIOD + 1) + 1 - LOGGED_PER_PERIOD}, "
                               + ", ".join(f"part{n}.c 1" for n in range(MOST_SENDERS)) + ")"), logged[-1]

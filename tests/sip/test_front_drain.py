"""The front's own refusal while the edge drains (sipedge/front_drain.py), on the kamailio.cfg the edge writes (real
Kamailio, stand-in workers, tests/sip/kamailio_front.py): once told through its control socket, it answers a new
INVITE 503 with Retry-After itself, and none reaches a worker, while a call's requests still reach its worker."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import RETRY_AFTER_SECONDS
from sipedge.front_drain import KAMCMD, control_socket, tell_front_draining
from sipedge.supervisor import KAMAILIO
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not (os.access(KAMAILIO, os.X_OK) and os.access(KAMCMD, os.X_OK)),
                                reason="Kamailio is not installed (.ci/run installs it)")


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    with running_front(tmp_path) as running:
        yield running


def _invite(peer: Peer, front: Front, call_id: str) -> None:
    peer.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
              extra=("Content-Type: application/sdp",), body=GOOD_SDP)


def test_told_the_edge_drains_the_front_refuses_a_new_invite_503_itself_and_a_calls_bye_still_passes(
        front: Front, tmp_path: Path) -> None:
    trunk = Peer(TRUNK, front)
    try:
        in_flight = secrets.token_hex(6)
        _invite(trunk, front, in_flight)  # the stand-in worker keeps it: a call in flight
        assert wait_for(lambda: any(in_flight in text for text in front.at_workers()))
        socket_mode = stat.S_IMODE(control_socket(tmp_path).stat().st_mode)
        assert socket_mode == 0o600, oct(socket_mode)  # the edge's user's alone, in its private folder
        assert asyncio.run(tell_front_draining(tmp_path))
        refused = secrets.token_hex(6)
        _invite(trunk, front, refused)
        answers = [message for message in trunk.messages() if refused in message]
        assert [m.split("\r\n", 1)[0] for m in answers] == ["SIP/2.0 503 Service Unavailable"], answers
        assert f"Retry-After: {RETRY_AFTER_SECONDS}\r\n" in answers[0]
        assert not any(refused in text for text in front.at_workers())  # no worker saw it
        assert f"503 from {TRUNK}: the edge is draining" in front.log_path.read_text()  # the front's refusal line
        # The call in flight: its caller's BYE still reaches its worker (by its Call-ID, as the front relayed it).
        trunk.send("BYE", f"sip:edge@{front.config.sip_address}", call_id=in_flight, to_tag="worker", cseq=2)
        assert wait_for(lambda: any(t.startswith("BYE ") and in_flight in t for t in front.at_workers()))
    finally:
        trunk.close()


def test_a_stranger_is_refused_403_during_the_drain_as_before(front: Front, tmp_path: Path) -> None:
    """The drain's 503 comes after the source's check: it tells nobody but a trunk that the edge drains."""
    assert asyncio.run(tell_front_draining(tmp_path))
    stranger = Peer(STRANGER, front)
    try:
        _invite(stranger, front, secrets.token_hex(6))
        assert stranger.answers() == ["SIP/2.0 403 Forbidden"]
    finally:
        stranger.close()


def test_a_front_that_cannot_be_told_is_logged_and_the_drain_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No front listening (its socket absent): bounded tries, then False and a line saying the workers refuse."""
    assert not asyncio.run(tell_front_draining(tmp_path))
    assert "Kamailio was not told the edge drains" in caplog.text
    assert "the workers refuse new calls 503 themselves" in caplog.text

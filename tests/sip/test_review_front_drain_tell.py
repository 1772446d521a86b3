"""Review of the supervisor's word to the front (sipedge/front_drain.py `tell_front_draining`): "whether Kamailio took
it" was kamcmd's exit status, but kamcmd (Debian's 5.6.3) exits 0 when Kamailio answers the RPC with a fault. The word
is now a SIP request whose answer is read: only the front's 200 is "taken". A front that refuses it is reported as not
told, with the line docs/sip.md#draining tells operators to look for ("Kamailio was not told the edge drains"), and its
flag stays unset. Real Kamailio on the edge's kamailio.cfg (tests/sip/kamailio_front.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest

from sipedge.front_drain import tell_front_draining
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import new_token
from tests.sip.kamailio_front import NUMBER, TRUNK, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")


def test_a_front_that_refuses_the_word_is_not_reported_as_told(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with running_front(tmp_path) as front:
        # A front whose kamailio.cfg holds another token (another start's file): it refuses the word.
        told = asyncio.run(tell_front_draining(front.config, new_token()))
        trunk = Peer(TRUNK, front)
        try:
            call_id = secrets.token_hex(6)
            trunk.send("INVITE", f"sip:{NUMBER}@{front.config.sip_address}", call_id=call_id,
                       extra=("Content-Type: application/sdp",), body=GOOD_SDP)
            reached = wait_for(lambda: any(call_id in text for text in front.at_workers()))
        finally:
            trunk.close()
    assert reached  # the front's flag was never set: a new call still reaches a worker
    assert not told
    assert "Kamailio was not told the edge drains" in caplog.text

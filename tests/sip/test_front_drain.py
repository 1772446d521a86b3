"""The front's own refusal while the edge drains (sipedge/front_drain.py), on the kamailio.cfg the edge writes (real
Kamailio, stand-in workers, tests/sip/kamailio_front.py): once told by the supervisor's own request with the drain's
token, it answers a new INVITE 503 with Retry-After itself, and none reaches a worker, while a call's requests still
reach its worker. The same request from another source or with another token is a stranger's, and changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import RETRY_AFTER_SECONDS
from sipedge.front_drain import DRAIN_HEADER, DRAIN_METHOD, tell_front_draining
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import new_token
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, Front, Peer, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
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
        assert asyncio.run(tell_front_draining(front.config, front.drain_token))
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
    assert asyncio.run(tell_front_draining(front.config, front.drain_token))
    stranger = Peer(STRANGER, front)
    try:
        _invite(stranger, front, secrets.token_hex(6))
        assert stranger.answers() == ["SIP/2.0 403 Forbidden"]
    finally:
        stranger.close()


def test_a_front_that_cannot_be_told_is_logged_and_the_drain_goes_on(
        front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """No front listening on the port: bounded tries, then False and a line saying the workers refuse."""
    elsewhere = dataclasses.replace(front.config, sip_port=front.config.worker_sip_port + 7)  # nobody's
    assert not asyncio.run(tell_front_draining(elsewhere, front.drain_token))
    assert "Kamailio was not told the edge drains" in caplog.text
    assert "the workers refuse new calls 503 themselves" in caplog.text


def _still_takes_calls(front: Front) -> bool:
    trunk = Peer(TRUNK, front)
    try:
        call_id = secrets.token_hex(6)
        _invite(trunk, front, call_id)
        return wait_for(lambda: any(call_id in text for text in front.at_workers()))
    finally:
        trunk.close()


def test_the_word_with_another_token_is_refused_and_logged_and_the_front_still_takes_calls(
        front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """The answer is read, not assumed: a front that refuses the word is reported as not told."""
    assert not asyncio.run(tell_front_draining(front.config, new_token()))
    assert "Kamailio was not told the edge drains" in caplog.text and "405 Method Not Allowed" in caplog.text
    assert _still_takes_calls(front)


@pytest.mark.parametrize("source", [TRUNK, STRANGER])
def test_the_word_from_another_source_is_a_strangers_request_even_with_the_token(front: Front, source: str) -> None:
    """Only the supervisor's address may say it (the token aside): from anywhere else the header is taken off and
    the request answered as any other out of a call, and the front still takes calls."""
    peer = Peer(source, front)
    try:
        peer.send(DRAIN_METHOD, f"sip:front@{front.config.sip_address}", call_id=secrets.token_hex(6),
                  extra=(f"{DRAIN_HEADER}: {front.drain_token}",))
        answers = peer.answers()
    finally:
        peer.close()
    assert answers and not answers[0].startswith("SIP/2.0 200"), answers
    assert _still_takes_calls(front)


def test_the_front_offers_no_command_channel(front: Front, tmp_path: Path) -> None:
    """No RPC socket (ctl, jsonrpcs): its command set would be all of Kamailio's, open to the edge's user."""
    cfg = (tmp_path / "kamailio.cfg").read_text()
    assert '"ctl.so"' not in cfg and "jsonrpcs" not in cfg and "binrpc" not in cfg
    assert not [path for path in tmp_path.iterdir() if path.is_socket()]

"""A PBX that reaches the edge with an inbound digest credential (docs/sip.md#inbound-digest): the whole edge
(Kamailio in front of one PJSIP worker, the default edge) and a real local dispatcher whose bot echoes each frame back
(bench/phone_echo_host.py). SIPp, the PBX, answers the front's 407 with the credential; its call is answered by the
bot and it hears its own words back. A one-worker edge without a credential runs no Kamailio at all:
tests/sip/test_drain.py's edge, whose calls its one PJSIP process answers. Kamailio in front of two workers taking a
credential's call is tests/sip/test_credential_trunk_calls.py's edge (the workers take it alike however many they
are), and the front's own decisions tests/sip/test_front_digest.py's, on real Kamailio (a wrong password 403 alike for
a served and an unserved number, reaching no worker)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sipedge.supervisor import KAMAILIO
from tests.phone.conftest import speech_8k, wait_active_sessions
from tests.phone.test_parrot_websocket import voiced
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.loopback_rtp import can_capture
from tests.sip.test_calls import cued_once_heard
from tests.sip.test_workers import echo_dispatcher, wait_for_workers
from tests.support.audio import Pcm, echo_similarity
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, PJSIP workers, a bot process

__all__ = ["echo_dispatcher"]  # the module's fixture, shared with test_workers.py
USERNAME, PASSWORD = "pbx", secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def workers() -> int:
    """The digest edge's workers: one, the default edge's, runs Kamailio for the credential too."""
    return 1


@pytest.fixture(scope="module")
def digest_edge(echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,
                workers: int) -> Iterator[EdgeProcess]:
    trunk = f'inbound_digest_username = "{USERNAME}"\ninbound_digest_password_env = "PBX_DIGEST_PASSWORD"'
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("sip-digest-edge"), workers=workers,
                  trunk_settings=trunk, env={"PBX_DIGEST_PASSWORD": PASSWORD}) as running:
        yield running


def kamailio_children(edge: EdgeProcess) -> list[int]:
    """The edge's children that run Kamailio (its front's main process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, IndexError, ValueError):
            continue
        if parent == edge.process.pid and command == KAMAILIO.encode():
            found.append(int(stat.parent.name))
    return found


async def test_a_pbx_answering_the_challenge_gets_its_call_answered_by_the_bot_and_hears_it(
    echo_dispatcher: DispatcherProcess, digest_edge: EdgeProcess, workers: int,
) -> None:
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        await wait_for_workers(digest_edge, workers=workers)
        assert len(kamailio_children(digest_edge)) == 1  # the front checks the credential, whatever the workers
        # The PBX hangs up once its words came back (test_calls.cued_once_heard), not 15 s after its speech.
        call, capture = await cued_once_heard(digest_edge, "call_echo_digest", 0.6, credential=(USERNAME, PASSWORD))
        assert call.final_answers("1 INVITE") == {407} and call.final_answers("2 INVITE") == {200}
        assert re.search(r"answered \(session \w+\)", digest_edge.log())
        heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
        speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
        assert echo_similarity(voiced(speech), heard, 8000) > 0.6
        assert await wait_active_sessions(api, 0) == 0

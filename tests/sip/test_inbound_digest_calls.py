"""A PBX that reaches the edge with an inbound digest credential (docs/sip.md#inbound-digest): the whole edge
(Kamailio in front of two PJSIP workers) and a real local dispatcher whose bot echoes each frame back
(bench/phone_echo_host.py). SIPp, the PBX, answers the front's 407 with the credential; its call is answered
by the bot and it hears its own words back. With a wrong password, no session is ever asked for."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator

import numpy as np
import pytest

from tests.phone.conftest import speech_8k, wait_active_sessions
from tests.phone.test_parrot_websocket import voiced
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.sipp import run_sipp
from tests.sip.test_workers import echo_dispatcher, wait_for_workers
from tests.support.audio import Pcm, echo_similarity
from tests.support.http_client import api_client
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, two PJSIP workers, a bot process

__all__ = ["echo_dispatcher"]  # the module's fixture, shared with test_workers.py
USERNAME, PASSWORD = "pbx", secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def digest_edge(echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    trunk = f'inbound_digest_username = "{USERNAME}"\ninbound_digest_password_env = "PBX_DIGEST_PASSWORD"'
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("sip-digest-edge"), workers=2, trunk_settings=trunk,
                  env={"PBX_DIGEST_PASSWORD": PASSWORD}) as running:
        yield running


async def test_a_pbx_answering_the_challenge_gets_its_call_answered_by_the_bot_and_hears_it(
    echo_dispatcher: DispatcherProcess, digest_edge: EdgeProcess,
) -> None:
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=echo_dispatcher.base_url, timeout=30) as api:
        await wait_for_workers(digest_edge, workers=2)
        media_port = free_port_pair(2)
        capture = LoopbackRtp(media_port)
        try:
            call = await asyncio.to_thread(run_sipp, "call_echo_digest", NUMBER, digest_edge.sip_port,
                                           digest_edge.workdir, media_port=media_port, credential=(USERNAME, PASSWORD))
            capture.wait_quiet()
        finally:
            capture.stop()
        assert call.returncode == 0, f"{call.output}\n{call.messages[-4000:]}\n{digest_edge.log()[-4000:]}"
        assert call.final_answers("1 INVITE") == {407} and call.final_answers("2 INVITE") == {200}
        assert re.search(r"answered \(session \w+\)", digest_edge.log())
        heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
        speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
        assert echo_similarity(voiced(speech), heard, 8000) > 0.6
        assert await wait_active_sessions(api, 0) == 0


async def test_a_wrong_password_asks_for_no_session_whatever_the_number(
    echo_dispatcher: DispatcherProcess, digest_edge: EdgeProcess,
) -> None:
    await wait_for_workers(digest_edge, workers=2)
    seen = len(digest_edge.log())
    for number in (NUMBER, "+15550100999"):
        call = await asyncio.to_thread(run_sipp, "call_digest_refused", number, digest_edge.sip_port,
                                       digest_edge.workdir, credential=(USERNAME, "not-" + PASSWORD))
        assert call.returncode == 0, f"{call.output}\n{digest_edge.log()[-4000:]}"
        assert call.statuses() == [407, 403], call.messages
    log = digest_edge.log()[seen:]
    assert "answered" not in log and "refused 404" not in log, log  # no worker saw either call

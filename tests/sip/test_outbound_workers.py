"""Calls placed with several workers: `POST /calls` at a real local dispatcher reaches the edge's one
control API (its supervisor's), which hands the call to a worker with a free slot, each in turn; that
worker's INVITE leaves through the Kamailio front to the trunk's termination (SIPp as the far end), its
digest challenge answered by the worker, and the answer, the RTP and the far end's requests come back
to that worker."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.sip.conftest import run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.test_outbound import (
    DIGEST,
    EDGE_SECRET,
    Outbound,
    answered_and_ended,
    outcome_of,
    place,
)
from tests.support.audio import BOT_AUDIO_RMS, rms
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, two workers, SIPp, a bot process importing Pipecat


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    control_port, callee_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET}
    far = f'termination_uri = "sip:127.0.0.1:{callee_port}"\ncallers = ["local"]\ncaller_ids = ["+14155550199"]'
    trunks = (f'\n[[trunk]]\nname = "far"\n{far}\ncps = 50\nring_seconds = 3\n'
              f'\n[[trunk]]\nname = "guarded"\n{far}\ncps = 50\ndigest_username = "{DIGEST[0]}"\n'
              'digest_password_env = "GUARDED_PASSWORD"\n')
    settings = f'control_port = {control_port}\n{KEY_SETTINGS}'
    keys = edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}")  # derived for the URL the dispatcher lists
    with (run_dispatcher(tmp_path_factory.mktemp("sip-out-dispatcher"), env) as dispatcher,
          run_edge(dispatcher, tmp_path_factory.mktemp("sip-out-edge"), settings=settings, trunks=trunks,
                   env={**keys, "GUARDED_PASSWORD": DIGEST[1]}, workers=2) as edge):
        yield Outbound(dispatcher, edge, callee_port, tmp_path_factory.mktemp("hooks") / "none.jsonl", control_port)


def worker_of(log: str, session_id: str) -> str:
    """The worker that took `session_id`'s call, as its log line names it."""
    found = re.findall(rf"\[worker (\d+)\] .*taken for session {session_id}", log)
    assert found, log[-6000:]
    return str(found[0])


async def test_calls_go_out_through_the_front_from_each_worker_in_turn(outbound: Outbound) -> None:
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=outbound.dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        # The first call: the first worker's, its INVITE challenged by the far end and sent again with the
        # trunk's digest, through the front both times.
        challenged, callee = await place(api, outbound, "guarded", "callee_challenges")
        outcome = await outcome_of(api, outbound, challenged)
        call = await callee
        assert call.returncode == 0, f"{call.output}\n{outbound.edge.log()[-6000:]}"
        assert "Proxy-Authorization: Digest" in call.messages, call.messages
        assert (outcome["outcome"], outcome["sip_status"]) == ("busy", 486), outcome
        await wait_for_idle_bot(api)
        # The next call: the second worker's, answered; the bot heard on the worker's RTP; its BYE through the front.
        media_port = free_port_pair(2)
        capture = LoopbackRtp(media_port)
        session_id, call = await answered_and_ended(api, outbound, capture, media_port)
        log = outbound.edge.log()
        assert call.returncode == 0, f"{call.output}\n{log[-6000:]}"
        assert (worker_of(log, challenged), worker_of(log, session_id)) == ("0", "1")
        # The INVITE came from the front (its Record-Route), naming the second worker's loopback port as Contact.
        invite = call.messages[call.messages.index("INVITE sip:"):]
        front = f"{outbound.edge.sip_port};lr"
        assert re.search(rf"^Record-Route: <sip:127\.0\.0\.1:{front}", invite, re.MULTILINE), invite[:2000]
        heard = np.frombuffer(capture.pcm("ulaw"), dtype=np.int16)
        assert rms(heard[: 8000 * 2]) > BOT_AUDIO_RMS, log[-6000:]
        assert await wait_active_sessions(api, 0) == 0


def test_each_workers_control_api_is_on_its_fixed_port_after_worker_control_port(outbound: Outbound) -> None:
    """The block the edge's file names (control_port + 1 unless set), one a worker: what a host's firewall admits
    to the edge's user, never a port the kernel picks (docs/sip.md#on-kubernetes)."""
    first = int(re.findall(r"^worker_control_port = (\d+)$", (outbound.edge.workdir / "edge.toml").read_text(),
                            re.MULTILINE)[0])
    bound = dict(re.findall(r"\[worker (\d+)\] .*control API on http://127\.0\.0\.1:(\d+)", outbound.edge.log()))
    assert bound == {"0": str(first), "1": str(first + 1)}, outbound.edge.log()[-4000:]

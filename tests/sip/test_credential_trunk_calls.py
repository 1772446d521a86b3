"""A PBX on an address no trunk names, reaching the edge with a credential trunk's username and password
(docs/sip.md#inbound-digest): the whole edge (Kamailio in front of one PJSIP worker, and of two), a real local
dispatcher and its bot, SIPp the PBX on 127.0.0.2 while the edge's other trunk's source is 127.0.0.1. The right
credential's call is answered as its own trunk's number and its re-INVITE within the call is taken as its trunk's; no
credential is 407 alone, reaching no worker; a caller's own line naming a credential's trunk is no credential.
Kamailio in front of one worker, the default edge with a credential, is tests/sip/test_inbound_digest_calls.py's edge:
the workers take a credential's call alike however many they are (sipedge/edge.py counts them only for a trunk's share
of slots, tests/sip/test_review_one_worker_front_share.py), and the front's decisions for each credential are
tests/sip/test_front_credential_trunk.py's, on real Kamailio (a wrong one 403 whatever the number, reaching no
worker)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from sipedge.worker_place import CREDENTIAL_HEADER
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.raw_sip import RawSip, status_of
from tests.sip.sipp import run_sipp
from tests.sip.test_workers import echo_dispatcher, wait_for_workers
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, PJSIP workers, a bot process

__all__ = ["echo_dispatcher"]  # test_workers.py's fixture
PBX = "127.0.0.2"  # in no trunk's sources: run_edge's own trunk's is 127.0.0.1/32
OFFICE_NUMBER, PASSWORD = "+14155550177", secrets.token_urlsafe(24)
OFFICE = f"""
[[trunk]]
name = "office"
numbers = {{ "{OFFICE_NUMBER}" = "" }}
inbound_digest_username = "office"
inbound_digest_password_env = "OFFICE_DIGEST_PASSWORD"
"""


@pytest.fixture(scope="module")
def workers() -> int:
    return 2


@pytest.fixture(scope="module")
def office_edge(echo_dispatcher: DispatcherProcess, tmp_path_factory: pytest.TempPathFactory,
                workers: int) -> Iterator[EdgeProcess]:
    with run_edge(echo_dispatcher, tmp_path_factory.mktemp("sip-credential-edge"), workers=workers, trunks=OFFICE,
                  env={"OFFICE_DIGEST_PASSWORD": PASSWORD}) as running:
        yield running


async def test_the_right_credential_from_anywhere_is_answered_as_its_trunks_number(
        office_edge: EdgeProcess, workers: int) -> None:
    await wait_for_workers(office_edge, workers=workers)
    call = await asyncio.to_thread(run_sipp, "call_digest_answered", OFFICE_NUMBER, office_edge.sip_port,
                                   office_edge.workdir, source=PBX, media_port=free_port_pair(2),
                                   credential=("office", PASSWORD))
    assert call.returncode == 0, f"{call.output}\n{call.messages[-4000:]}\n{office_edge.log()[-4000:]}"
    assert call.final_answers("1 INVITE") == {407} and call.final_answers("2 INVITE") == {200}
    assert call.final_answers("3 INVITE") == {200}  # the hold, within the call: the trunk's own
    log = office_edge.log()
    assert f"from {PBX}:" in log and f"to {OFFICE_NUMBER} (trunk office) ringing" in log, log[-4000:]


async def test_no_credential_is_challenged_and_a_forged_credential_line_is_none(
        office_edge: EdgeProcess, workers: int) -> None:
    """From the PBX's address, an INVITE naming the office's trunk in the front's own header is challenged like any
    other; from the other trunk's source (admitted by its address), the same line does not make the office's number
    its own."""
    await wait_for_workers(office_edge, workers=workers)
    seen = len(office_edge.log())  # the module's edge: an earlier test's call rang the office's number
    for source, expected in ((PBX, 407), ("127.0.0.1", 404)):
        caller = RawSip(source, office_edge.sip_port)
        try:
            caller.invite(OFFICE_NUMBER, extra=f"{CREDENTIAL_HEADER}: office\r\n")
            answer = caller.final_answer(10.0)
        finally:
            caller.close()
        assert answer is not None and status_of(answer) == expected, f"{answer}\n{office_edge.log()[-3000:]}"
    assert "(trunk office) ringing" not in office_edge.log()[seen:]


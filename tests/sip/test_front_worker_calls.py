"""A worker's own call through the edge's Kamailio front (real Kamailio on the kamailio.cfg the edge
writes, stand-in workers, raw UDP sockets as the trunk): the INVITE reaches the termination only with
the workers' calls' token (never the one the front sends the workers), and without that token or the
front's own Route; the worker's ACK and BYE reach the far end wherever it answered from, and the ACK of a
refusal is taken by the front rather than refused."""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import TOKEN_HEADER
from tests.sip.kamailio_front import Front, Peer, running_front, wait_for

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

TERMINATION_HOST = "127.0.0.78"  # where the trunk's termination_uri points
SBC_HOST = "127.0.0.79"  # the trunk's other address, which a name's call may be answered from
MEDIA_HOST = "127.0.0.80"  # a third one, named by an answer's Contact
REPLY_HEADERS = ("via", "from", "to", "call-id", "cseq", "record-route")


@dataclass
class FarEnd:
    """The trunk: a socket at each of its addresses, all on one port; what reaches any of them is kept."""

    port: int
    sockets: dict[str, socket.socket]
    got: list[str] = field(default_factory=list)

    def keep(self, sock: socket.socket) -> None:
        while True:
            try:
                self.got.append(sock.recv(65535).decode(errors="replace"))
            except OSError:
                return

    def requests(self, method: str, call_id: str) -> list[str]:
        return [text for text in self.got if text.startswith(f"{method} ") and call_id in text]

    def answer(self, invite: str, status: str, source: str, extra: tuple[str, ...] = ()) -> None:
        """`status` to `invite`, sent from the trunk's address `source` to the front."""
        head = invite.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [line + (";tag=far" if line.lower().startswith("to:") else "") for line in head[1:]
                if line.split(":", 1)[0].lower() in REPLY_HEADERS]
        via = re.search(r"^Via: SIP/2.0/UDP ([^;:]+):(\d+)", invite, re.MULTILINE)
        assert via is not None, invite
        reply = f"SIP/2.0 {status}\r\n" + "\r\n".join([*keep, *extra]) + "\r\nContent-Length: 0\r\n\r\n"
        self.sockets[source].sendto(reply.encode(), (via[1], int(via[2])))


@pytest.fixture
def far_end() -> Iterator[FarEnd]:
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.bind((TERMINATION_HOST, 0))
    port = first.getsockname()[1]
    sockets = {TERMINATION_HOST: first}
    for host in (SBC_HOST, MEDIA_HOST):
        sockets[host] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets[host].bind((host, port))
    far = FarEnd(port, sockets)
    for sock in sockets.values():
        threading.Thread(target=far.keep, args=(sock,), daemon=True).start()
    yield far
    for sock in sockets.values():
        sock.close()


@pytest.fixture
def front(tmp_path_factory: pytest.TempPathFactory, far_end: FarEnd) -> Iterator[Front]:
    """A front whose one trunk places calls at the far end's termination, with no `sources` of its own."""
    trunk = (f'[[trunk]]\nname = "far"\ntermination_uri = "sip:{TERMINATION_HOST}:{far_end.port}"\n'
             'callers = ["team-a"]\n')
    with running_front(tmp_path_factory.mktemp("worker-calls"), trunk) as running:
        yield running


def as_worker(front: Front) -> Peer:
    """A peer sending from the first worker's own port, as that worker's PJSIP does."""
    worker = Peer("127.0.0.1", front)
    worker.sock.close()
    worker.sock, worker.port = front.workers[0].sock, front.config.worker_sip_port
    return worker


def front_route(front: Front) -> str:
    return f"Route: <sip:{front.config.sip_address}:{front.config.sip_port};lr>"


def invite(front: Front, far_end: FarEnd) -> tuple[Peer, str, str]:
    """The worker's INVITE to the termination, through the front, with the calls' token as a worker sends
    it: the worker, the Call-ID, and the INVITE as the termination received it."""
    worker, call_id = as_worker(front), secrets.token_hex(6)
    worker.send("INVITE", f"sip:+14155550100@{TERMINATION_HOST}:{far_end.port}", call_id=call_id,
                extra=(front_route(front), f"{TOKEN_HEADER}: {front.call_token}"))
    assert wait_for(lambda: far_end.requests("INVITE", call_id) != []), front.log_path.read_text()[-2000:]
    return worker, call_id, far_end.requests("INVITE", call_id)[0]


def replied(front: Front, call_id: str, status: str) -> list[str]:
    """The replies with `status` the front sent the first worker for `call_id`."""
    return [reply for reply in front.workers[0].replies if reply.startswith(f"SIP/2.0 {status} ") and call_id in reply]


def test_the_termination_gets_no_route_naming_the_front_nor_the_edges_token(front: Front, far_end: FarEnd) -> None:
    _, _, relayed = invite(front, far_end)
    front_uri = f"{front.config.sip_address}:{front.config.sip_port}"
    assert not re.search(r"^Route:", relayed, re.MULTILINE | re.IGNORECASE), relayed
    assert TOKEN_HEADER.lower() not in relayed.lower() and front.call_token not in relayed, relayed
    assert f"Record-Route: <sip:{front_uri};lr" in relayed, relayed  # the trunk's way back to the worker


@pytest.mark.parametrize("answered_from, route_via_sbc", [
    (TERMINATION_HOST, False),  # its Contact names the trunk's other address (as a name's call is answered)
    (SBC_HOST, True),  # answered from the trunk's other address, which records its own route
])
def test_the_workers_ack_and_bye_reach_the_far_end_wherever_it_answered_from(
        front: Front, far_end: FarEnd, answered_from: str, route_via_sbc: bool) -> None:
    worker, call_id, relayed = invite(front, far_end)
    sbc_route = f"<sip:{SBC_HOST}:{far_end.port};lr>"
    record = (f"Record-Route: {sbc_route}",) if route_via_sbc else ()
    contact = MEDIA_HOST if route_via_sbc else SBC_HOST
    far_end.answer(relayed, "200 OK", answered_from, (*record, f"Contact: <sip:far@{contact}:{far_end.port}>"))
    assert wait_for(lambda: replied(front, call_id, "200"))
    recorded = re.search(r"^Record-Route: <([^>]+)>", relayed, re.MULTILINE)
    assert recorded is not None, relayed
    # The worker's route set: the front's recorded route, then the trunk's own.
    routes = (f"Route: <{recorded[1]}>", *((f"Route: {sbc_route}",) if route_via_sbc else ()))
    target = f"sip:far@{contact}:{far_end.port}"
    worker.send("ACK", target, call_id=call_id, to_tag="far", extra=routes)
    assert wait_for(lambda: far_end.requests("ACK", call_id) != []), front.log_path.read_text()[-2000:]
    worker.send("BYE", target, call_id=call_id, to_tag="far", cseq=2, extra=routes)
    assert wait_for(lambda: far_end.requests("BYE", call_id) != []), front.log_path.read_text()[-2000:]
    log = front.log_path.read_text(errors="replace")
    assert "refused 403" not in log, log[-2000:]
    assert "cannot find load" not in log, log[-2000:]  # no worker slot is counted for the worker's own call


def test_the_workers_ack_of_a_refusal_is_taken_by_the_front(front: Front, far_end: FarEnd) -> None:
    worker, call_id, relayed = invite(front, far_end)
    far_end.answer(relayed, "486 Busy Here", TERMINATION_HOST)
    assert wait_for(lambda: replied(front, call_id, "486"))
    # As RFC 3261 17.1.1.3 has it: the INVITE's branch and Route.
    worker.send("ACK", f"sip:+14155550100@{TERMINATION_HOST}:{far_end.port}", call_id=call_id, to_tag="far",
                extra=(front_route(front),), same_branch=True)
    time.sleep(2.0)  # the front resends its 486 at 0.5 s, 1 s, ... until the worker's ACK reaches its transaction
    assert len(replied(front, call_id, "486")) == 1
    assert "refused 403" not in front.log_path.read_text(errors="replace")


@pytest.mark.parametrize("token", [None, "guessed"])
def test_an_invite_from_a_workers_port_without_the_edges_token_is_refused(
        front: Front, far_end: FarEnd, token: str | None) -> None:
    """Whoever binds a dead or restarting worker's port cannot have the front call out for it."""
    worker, call_id = as_worker(front), secrets.token_hex(6)
    worker.send("INVITE", f"sip:+14155550100@{TERMINATION_HOST}:{far_end.port}", call_id=call_id,
                extra=(front_route(front), *((f"{TOKEN_HEADER}: {token}",) if token else ())))
    assert wait_for(lambda: replied(front, call_id, "403") != []), front.log_path.read_text()[-2000:]
    assert far_end.requests("INVITE", call_id) == []

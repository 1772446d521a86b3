"""Review of the front on one worker (sipedge/config.py `front_runs`): an edge on `sip_address = "0.0.0.0"`
(docs/sip.md's table: "an IP address of this host (`0.0.0.0` for all of them)"), the default one worker, that adds a
trunk's inbound digest credential now runs Kamailio in front of that worker. Kamailio, listening on 0.0.0.0, relays a
trunk's INVITE to the worker from 127.0.0.1:sip_port, while the worker believes the front's SOURCE_HEADER only from
`f"{sip_address}:{sip_port}"` (sipedge/worker_place.py `place`), "0.0.0.0:5060": the header is ignored, the call's
source is taken to be 127.0.0.1, which no trunk allows, and the worker refuses every call of every trunk 403
(sipedge/admission.py "no trunk allows this source"), the plain trunk's as well as the digest trunk's. Real Kamailio,
a stand-in worker. Each test is a finding, strict-xfail until fixed."""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sipedge.config import ConfigError, load
from sipedge.front_config import write_front
from sipedge.supervisor import KAMAILIO, _answers_options, front_env
from sipedge.worker_place import new_token, place, true_source
from tests.sip.kamailio_front import TRUNK, Front, Peer, StandInWorker, _worker_sockets, wait_for
from tests.sip.raw_sip import GOOD_SDP
from tests.support.ports import free_port
from tests.support.processes import terminate

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

NUMBER, PBX_NUMBER = "+14155550199", "+14155550198"
EDGE = """
dispatcher_url = "http://127.0.0.1:9"
sip_address = "0.0.0.0"
public_address = "203.0.113.5"
sip_port = {port}
rtp_port = 41000
rtp_port_count = 40
worker_sip_port = {worker_port}

[[trunk]]
name = "carrier"
sources = ["{trunk}/32"]
numbers = {{ "{number}" = "" }}

[[trunk]]
name = "pbx"
sources = ["127.0.0.21/32"]
numbers = {{ "{pbx_number}" = "" }}
inbound_digest_username = "pbx"
inbound_digest_password_env = "PBX_PASSWORD"
"""


def test_an_edge_on_every_address_with_a_digest_trunk_either_is_refused_or_its_worker_sees_the_trunks_source(
        tmp_path: Path) -> None:
    first, sockets = _worker_sockets(1)
    port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(port=port, worker_port=first, trunk=TRUNK, number=NUMBER, pbx_number=PBX_NUMBER))
    variables = {"PATH": "/usr/bin:/bin", "PBX_PASSWORD": secrets.token_urlsafe(24)}
    try:
        config = load({**variables, "SIP_EDGE_CONFIG": str(path)})
    except ConfigError as refused:  # a fix may refuse the unspecified address where the front runs, naming it
        assert "sip_address" in str(refused)
        for sock in sockets:
            sock.close()
        return
    assert config.front and config.workers == 1  # the default one worker, fronted for the pbx trunk's credential
    worker = StandInWorker(sockets[0])
    threading.Thread(target=worker.serve, daemon=True).start()
    token = new_token()
    files = write_front(config, tmp_path, 3, token)
    log_path = tmp_path / "kamailio.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([KAMAILIO, "-f", str(files.config), "-DD", "-E", "-Y", str(tmp_path), "-w",
                                    str(tmp_path)], stdout=log, stderr=subprocess.STDOUT,
                                   env=front_env(variables, config))
    front = Front(config, [worker], log_path, token)
    trunk = Peer(TRUNK, front)
    try:
        deadline = time.monotonic() + 30
        while not _answers_options("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        call_id = secrets.token_hex(6)
        # The plain trunk's INVITE (no credential asked of its source): the front relays it to the worker.
        trunk.send("INVITE", f"sip:{NUMBER}@203.0.113.5", call_id=call_id,
                   extra=("Content-Type: application/sdp",), body=GOOD_SDP)
        assert wait_for(lambda: any(call_id in text for text in worker.received)), log_path.read_text()
        index = next(i for i, text in enumerate(worker.received) if call_id in text)
        sender, message = worker.senders[index], worker.received[index]
        # What the worker process makes of it (sipedge/stack.py `source_of`): its own Place, with the edge's token.
        believed = place(dataclasses.replace(config, front_token=token), 0).front
        assert true_source(sender, message, believed).startswith(f"{TRUNK}:"), (sender, believed)
    finally:
        trunk.close()
        terminate(process)
        for sock in sockets:
            sock.close()

"""Review of the front's drain channel (sipedge/front_drain.py): Kamailio's ctl module on a Unix socket in the
supervisor's private folder, which kamcmd sets the drain flag through. Real Kamailio (Debian's 5.6.3) on the
kamailio.cfg the edge writes, stand-in workers (tests/sip/kamailio_front.py). Each test is a finding, strict-xfail
until fixed."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sipedge.config import load
from sipedge.front_drain import KAMCMD, control_socket, tell_front_draining
from sipedge.supervisor import KAMAILIO, Supervisor
from tests.sip.kamailio_front import running_front
from tests.sip.test_drain_parts import edge_file

pytestmark = pytest.mark.skipif(not (os.access(KAMAILIO, os.X_OK) and os.access(KAMCMD, os.X_OK)),
                                reason="Kamailio is not installed (.ci/run installs it)")

TMPDIR_LENGTH = 80  # an absolute TMPDIR this long: the folder adds /sipedge-front-XXXXXXXX, the socket /ctl.sock


@pytest.mark.xfail(strict=True, reason="Low: ctl refuses a socket path over 104 bytes, and the path is TMPDIR's; "
                                       "Kamailio then exits at start and the edge never starts")
def test_the_front_starts_and_takes_the_drain_under_a_long_tmpdir(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the drain channel Kamailio bound nothing in the folder, so a workers > 1 edge started whatever TMPDIR
    said. Now ctl's init_unix_sock refuses the path ("name too long (112 > 104)"), ctl's mod_init fails, Kamailio
    exits 255 at each start and the supervisor stops the edge ("the edge did not start: Kamailio did not answer"):
    a TMPDIR of 73 characters or more takes down every edge whose front runs, the one-worker digest edge included."""
    long_tmpdir = tmp_path / ("t" * (TMPDIR_LENGTH - len(str(tmp_path)) - 1))
    long_tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmpdir))  # what TMPDIR sets for tempfile.mkdtemp
    folder = Supervisor(load(edge_file(tmp_path, "workers = 2")))._folder  # the supervisor's own folder
    try:
        with running_front(folder):  # Kamailio on the edge's kamailio.cfg, in that folder
            assert asyncio.run(tell_front_draining(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.xfail(strict=True, reason="Low: the drain channel is Kamailio's whole RPC set (core.kill, tm.t_uac_start, "
                                       "dns.add_a, dispatcher.set_state, htable.flush), open to every process of the "
                                       "edge's user, the PJSIP workers included")
def test_the_drain_channel_offers_nothing_but_the_drain(tmp_path: Path) -> None:
    """front_drain.py calls the channel one RPC "whose only argument is the entry's name", but ctl serves every RPC
    the loaded modules export. On a cloud host the supervisor, Kamailio and the workers are one uid (10001, no -u
    drop), so a worker, which parses every admitted call's SDP and RTP and is kept from the digest passwords for that
    reason (supervisor.py `worker_env`), can through it: stop the front (core.kill), place SIP requests from the front
    to any host and number past route[WORKER_CALL]'s termination check (tm.t_uac_start), point the termination's
    name at its own address (dns.add_a), mark the other workers down (dispatcher.set_state), or lift the digest
    flood cut-off and the replay guard (htable.flush digestfails / invites)."""
    with running_front(tmp_path):
        listed = subprocess.run([KAMCMD, "-s", f"unix:{control_socket(tmp_path)}", "system.listMethods"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.split()
    beyond_the_drain = {"core.kill", "tm.t_uac_start", "dns.add_a", "dispatcher.set_state", "htable.flush",
                        "htable.delete", "pl.set_pipe"} & set(listed)
    assert not beyond_the_drain, sorted(beyond_the_drain)

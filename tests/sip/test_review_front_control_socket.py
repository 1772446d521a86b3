"""Review of the front's drain channel (sipedge/front_drain.py), once Kamailio's ctl module on a Unix socket in the
supervisor's private folder, which kamcmd set the drain flag through: a socket path over 104 bytes (a long TMPDIR) made
Kamailio exit at start, and the channel was Kamailio's whole RPC set. The channel is now one SIP request of the
supervisor's own with a token of its own. Real Kamailio (Debian's 5.6.3) on the kamailio.cfg the edge writes,
stand-in workers (tests/sip/kamailio_front.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sipedge.config import load
from sipedge.front_drain import tell_front_draining
from sipedge.supervisor import KAMAILIO, Supervisor
from tests.sip.kamailio_front import running_front
from tests.sip.test_drain_parts import edge_file

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

TMPDIR_LENGTH = 80  # an absolute TMPDIR this long: the folder adds /sipedge-front-XXXXXXXX, a socket would add more


def test_the_front_starts_and_takes_the_drain_under_a_long_tmpdir(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With ctl, its init_unix_sock refused the path ("name too long (112 > 104)") and Kamailio exited 255 at each
    start: a TMPDIR of 73 characters or more took down every edge whose front runs."""
    long_tmpdir = tmp_path / ("t" * (TMPDIR_LENGTH - len(str(tmp_path)) - 1))
    long_tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmpdir))  # what TMPDIR sets for tempfile.mkdtemp
    folder = Supervisor(load(edge_file(tmp_path, "workers = 2")))._folder  # the supervisor's own folder
    try:
        with running_front(folder) as front:  # Kamailio on the edge's kamailio.cfg, in that folder
            assert asyncio.run(tell_front_draining(front.config, front.drain_token))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_drain_channel_offers_nothing_but_the_drain(tmp_path: Path) -> None:
    """ctl served every RPC the loaded modules export (core.kill, tm.t_uac_start, dns.add_a, dispatcher.set_state,
    htable.flush) to every process of the edge's user, the PJSIP workers included. Now Kamailio loads no RPC
    transport at all, and binds no socket in its folder."""
    with running_front(tmp_path):
        cfg = (tmp_path / "kamailio.cfg").read_text()
        sockets = [path.name for path in tmp_path.iterdir() if path.is_socket()]
    loaded = {line.split('"')[1] for line in cfg.splitlines() if line.startswith("loadmodule")}
    assert not loaded & {"ctl.so", "jsonrpcs.so", "xmlrpc.so", "xhttp_rpc.so"}, sorted(loaded)
    assert sockets == []

"""The front's TLS in parts (docs/sip.md#tls-with-several-workers): the settings that now load with
several workers, the kamailio.cfg lines they give, the TLS files handed to Kamailio as memory files
(never a copy on disk), and the hop a worker believes only from the front."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sipedge.config import load
from sipedge.front_config import CALL_SECONDS, render
from sipedge.front_key import LOWEST_DESCRIPTOR, hand_over
from sipedge.front_tls import CALL_SECONDS as TLS_CALL_SECONDS
from sipedge.front_tls import QUIET_SECONDS
from sipedge.worker_place import TOKEN_HEADER, TRANSPORT_HEADER, Front, front_hop_was_tls, new_token
from tests.sip.certificates import TestCa
from tests.sip.test_edge_parts import config
from tests.sip.test_tls_config import TRUNK, files

TOKEN = new_token()
FRONT = Front("10.0.0.5:5060", TOKEN)
SIGNED = f"{TOKEN_HEADER}: {TOKEN}\r\n"


def test_tls_with_several_workers_loads_and_the_front_listens_for_it(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    ca = TestCa(tmp_path / "ca")
    settings = files(tmp_path) + f'tls_ca_file = "{ca.certificate}"\ntls_verify_client = true\nworkers = 2\n'
    edge = load(config(tmp_path, settings + TRUNK))
    assert edge.tls is not None and edge.workers == 2
    cfg = render(edge, tmp_path / "workers.list", TOKEN)
    assert "listen=tls:127.0.0.1:5061" in cfg and "listen=tcp" not in cfg  # TLS, never plain TCP
    assert 'modparam("tls", "tls_method", "TLSv1.2+")' in cfg
    assert 'modparam("tls", "require_certificate", 1)' in cfg and 'modparam("tls", "verify_certificate", 1)' in cfg
    assert f'modparam("tls", "ca_list", "{ca.certificate}")' in cfg
    assert "disable_core_dump=yes" in cfg
    assert f"tcp_connection_lifetime={QUIET_SECONDS}" in cfg  # a bare connect holds a slot that long at most
    assert TLS_CALL_SECONDS == CALL_SECONDS  # a quiet call keeps the connection its worker's BYE goes on
    kept = f"if (proto == TLS) {{ tcp_set_connection_lifetime({CALL_SECONDS}); }}"
    assert 'loadmodule "tcpops.so"' in cfg and kept in cfg
    assert cfg.index("if (!(src_ip == 10.0.0.0/24))") < cfg.index(kept) < cfg.index("route[")  # a trunk's INVITE
    without = render(load(config(tmp_path, "workers = 2\n" + TRUNK)), tmp_path / "workers.list", TOKEN)
    assert "disable_tcp=yes" in without and "listen=tls" not in without and "tls.so" not in without  # UDP alone


def test_the_tls_files_reach_kamailio_as_memory_files_with_no_copy_on_disk(tmp_path: Path) -> None:
    edge = load(config(tmp_path, files(tmp_path) + "workers = 2\n" + TRUNK))
    assert edge.tls is not None
    before = sorted(tmp_path.rglob("*"))
    handed = hand_over(edge.tls)
    try:
        assert len(handed.descriptors) == 2 and min(handed.descriptors) >= LOWEST_DESCRIPTOR
        for descriptor in handed.descriptors:
            assert fcntl.fcntl(descriptor, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # only Kamailio, by pass_fds
            assert os.readlink(f"/proc/self/fd/{descriptor}").startswith("/memfd:")
        assert Path(handed.tls.private_key_file).read_bytes() == Path(edge.tls.private_key_file).read_bytes()
        cfg = render(edge, tmp_path / "workers.list", TOKEN, handed.tls)
        assert f'"private_key", "{handed.tls.private_key_file}"' in cfg and str(tmp_path / "edge.key") not in cfg
        assert "PRIVATE KEY" not in cfg
        assert sorted(tmp_path.rglob("*")) == before  # nothing written beside the files
    finally:
        handed.close()


def test_a_worker_believes_the_tls_hop_from_the_front_only_and_its_last_line() -> None:
    said = f"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n{TRANSPORT_HEADER}: tls\r\n{SIGNED}\r\n"
    assert front_hop_was_tls(FRONT.address, said, FRONT)
    assert not front_hop_was_tls("10.0.0.9:5060", said, FRONT)  # anyone else writing it
    assert not front_hop_was_tls(FRONT.address, said, None)  # one process: PJSIP's own transport decides
    assert not front_hop_was_tls(FRONT.address, said.replace(SIGNED, ""), FRONT)  # the front's address, not it
    forged = f"INVITE sip:x SIP/2.0\r\n{TRANSPORT_HEADER}: tls\r\n{TRANSPORT_HEADER}: udp\r\n{SIGNED}\r\n"
    assert not front_hop_was_tls(FRONT.address, forged, FRONT)  # the front's line is the head's last
    in_body = f"INVITE sip:x SIP/2.0\r\n{TRANSPORT_HEADER}: udp\r\n{SIGNED}\r\n{TRANSPORT_HEADER}: tls\r\n"
    assert not front_hop_was_tls(FRONT.address, in_body, FRONT)

"""A trunk with an inbound digest credential and no sources (docs/sip.md#inbound-digest), without a running edge:
the file's checks, the worker's word for the credential's trunk (the front's line with its token, nobody else's),
the worker's admission by it, and where the call's requests within it may come from."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from sipedge.admission import Admitted, Refused, admit, dialog_peer
from sipedge.config import ConfigError, EdgeConfig, load
from sipedge.front_config import write_front
from sipedge.supervisor import KAMAILIO
from sipedge.worker_place import CREDENTIAL_HEADER, TOKEN_HEADER, Front, front_credential, new_token

TOKEN = new_token()
FRONT = Front("10.0.0.5:5060", TOKEN)
PASSWORD = "a-password-long-enough-for-the-edge"
EDGE = """
sip_address = "10.0.0.5"
sip_port = 5060
rtp_port = 40000
rtp_port_count = 200

[[trunk]]
name = "carrier"
sources = ["192.0.2.0/24"]
numbers = {{ "+14155550199" = "" }}

[[trunk]]
name = "office"
numbers = {{ "+14155550100" = "" }}
{office}

[[trunk]]
name = "branch"
numbers = {{ "+14155550101" = "" }}
inbound_digest_username = "{branch}"
inbound_digest_password_env = "BRANCH_PASSWORD"
"""
OFFICE = 'inbound_digest_username = "office"\ninbound_digest_password_env = "OFFICE_PASSWORD"'


def _edge(tmp_path: Path, office: str = OFFICE, branch: str = "branch") -> EdgeConfig:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(office=office, branch=branch))
    return load({"SIP_EDGE_CONFIG": str(path), "OFFICE_PASSWORD": PASSWORD, "BRANCH_PASSWORD": PASSWORD})


def test_a_trunk_with_a_credential_needs_no_sources_and_runs_the_front(tmp_path: Path) -> None:
    config = _edge(tmp_path)
    assert [t.sources for t in config.trunks[1:]] == [(), ()] and config.front


def test_a_trunk_with_neither_sources_nor_a_credential_is_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trunk 'office': numbers need sources.*or an inbound digest credential"):
        _edge(tmp_path, office="")


def test_two_trunks_of_one_username_are_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trunks 'office' and 'branch' share the inbound_digest_username 'office': "
                                          "give each trunk a username of its own"):
        _edge(tmp_path, branch="office")


def test_the_credentials_trunk_is_admitted_whatever_the_source_with_its_own_numbers_only(tmp_path: Path) -> None:
    trunks = _edge(tmp_path).trunks
    admitted = admit(trunks, "203.0.113.9:5060", "<sip:+14155550100@edge>", "office")
    assert isinstance(admitted, Admitted) and admitted.trunk.name == "office"
    # Another trunk's number, even one its source would be served by: not this credential's.
    assert admit(trunks, "192.0.2.7:5060", "<sip:+14155550199@edge>", "office") == Refused(
        404, "no trunk serves this number")
    assert admit(trunks, "203.0.113.9:5060", "<sip:+14155550101@edge>", "office") == Refused(
        404, "no trunk serves this number")
    # Without the front's word, a source no trunk names is nobody's.
    assert admit(trunks, "203.0.113.9:5060", "<sip:+14155550100@edge>") == Refused(403, "no trunk allows this source")
    assert isinstance(admit(trunks, "192.0.2.7:5060", "<sip:+14155550199@edge>"), Admitted)


def test_a_worker_takes_the_credential_from_the_fronts_line_with_its_token_only() -> None:
    signed = f"INVITE sip:x@y SIP/2.0\r\nVia: a\r\n{TOKEN_HEADER}: {TOKEN}\r\n{CREDENTIAL_HEADER}: office\r\n\r\n"
    assert front_credential(FRONT.address, signed, FRONT) == "office"
    assert front_credential("10.0.0.6:5060", signed, FRONT) is None  # not the front's address
    assert front_credential(FRONT.address, signed.replace(TOKEN, new_token()), FRONT) is None
    assert front_credential(FRONT.address, signed, None) is None  # a lone edge has no front
    unsigned = f"INVITE sip:x@y SIP/2.0\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\nv=0\r\n{CREDENTIAL_HEADER}: office\r\n"
    assert front_credential(FRONT.address, unsigned, FRONT) is None  # in the body: the caller's


def test_requests_within_the_call_come_from_its_own_caller_or_its_trunks_sources(tmp_path: Path) -> None:
    carrier, office = _edge(tmp_path).trunks[:2]
    assert dialog_peer(office, "203.0.113.9", "203.0.113.9:5070")
    assert not dialog_peer(office, "203.0.113.9", "203.0.113.10:5060")
    assert not dialog_peer(office, "203.0.113.9", "192.0.2.7:5060")  # another trunk's source
    assert dialog_peer(carrier, "192.0.2.7", "192.0.2.8:5060")
    assert not dialog_peer(carrier, "192.0.2.7", "[2001:db8::1]:5060")


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
@pytest.mark.parametrize("carrier", [True, False], ids=["beside-a-trunk-of-sources", "alone"])
def test_kamailio_accepts_the_front_for_credentials_from_anywhere(tmp_path: Path, carrier: bool) -> None:
    config = _edge(tmp_path)
    if not carrier:  # no trunk names a source at all
        config = dataclasses.replace(config, trunks=config.trunks[1:])
    files = write_front(config, tmp_path, 3, "t" * 43)
    checked = subprocess.run([KAMAILIO, "-c", "-f", str(files.config)], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = files.config.read_text()
    assert 'pv_proxy_authenticate("voicefleet", "$env(OFFICE_PASSWORD)", "0")' in text
    assert 'pv_proxy_authenticate("voicefleet", "$env(BRANCH_PASSWORD)", "0")' in text

"""The parts of an edge with several workers that need no running process: the configuration's
checks, where each worker binds, whose word a worker takes for a request's source, and the
kamailio.cfg the edge writes, which Kamailio itself must accept."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sipedge.config import ConfigError, EdgeConfig, check_workers, load
from sipedge.front_config import write_front
from sipedge.supervisor import KAMAILIO, Supervisor
from sipedge.worker_place import (
    CALL_TOKEN_VARIABLE,
    SOURCE_HEADER,
    TOKEN_HEADER,
    TOKEN_VARIABLE,
    TRANSPORT_HEADER,
    Front,
    front_hop_was_tls,
    new_token,
    place,
    true_source,
    without_token,
    worker_index,
)

TOKEN = new_token()
FRONT = Front("10.0.0.5:5060", TOKEN)
SIGNED = f"{TOKEN_HEADER}: {TOKEN}\r\n"  # the front's last line

EDGE = """
sip_address = "10.0.0.5"
sip_port = 5060
rtp_port = 40000
rtp_port_count = 200
{extra}

[[trunk]]
name = "carrier"
sources = ["192.0.2.0/24"]
numbers = {{ "+14155550199" = "" }}
{trunk}
"""


PBX_PASSWORD = "secret-long-enough-for-a-digest"  # an inbound one: 20 characters or more (sipedge/inbound_password.py)


def edge(tmp_path: Path, extra: str = "", trunk: str = "") -> EdgeConfig:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(extra=extra, trunk=trunk))
    return load({"SIP_EDGE_CONFIG": str(path), "PBX_PASSWORD": PBX_PASSWORD})


def test_workers_bind_loopback_ports_of_their_own_and_share_the_rtp_range(tmp_path: Path) -> None:
    config = dataclasses.replace(edge(tmp_path, "workers = 17"), front_token=TOKEN)
    assert config.worker_sip_port == 5061  # sip_port + 1 unless set
    places = [place(config, index) for index in range(17)]
    assert {p.sip_host for p in places} == {"127.0.0.1"}
    assert [p.sip_port for p in places] == list(range(5061, 5078))
    assert all(p.rtp_port_count == 10 and p.rtp_port % 2 == 0 for p in places)  # 200 // 17, even
    assert places[-1].rtp_port + places[-1].rtp_port_count <= 40200
    assert all(p.front == FRONT for p in places)
    alone = place(edge(tmp_path), None)
    assert (alone.sip_host, alone.sip_port, alone.front) == ("10.0.0.5", 5060, None)
    with pytest.raises(ConfigError, match=f"{TOKEN_VARIABLE} is not set"):  # a worker started by hand
        place(edge(tmp_path, "workers = 2"), 0)


@pytest.mark.parametrize(("extra", "trunk", "names"), [
    ("workers = 30", "", "rtp_port_count: 30 workers need at least 240 RTP ports"),
    ("workers = 3\nworker_sip_port = 5059", "", "worker_sip_port: the workers' ports 5059-5061"),
    ("workers = 65", "", "workers: Input should be less than or equal to 64"),
    ("workers = 2", 'registrar = "sip:pbx.example.com"\ndigest_username = "edge"\ndigest_password_env = "PBX_PASSWORD"',
     "a trunk with a registrar needs workers = 1"),
])
def test_workers_that_cannot_work_say_what_to_change(tmp_path: Path, extra: str, trunk: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace("(", r"\(")):
        edge(tmp_path, extra, trunk)


CONTROL = 'control_port = 5080\ncontrol_secret_env = "CONTROL_KEY"\n'


def controlled(tmp_path: Path, extra: str) -> EdgeConfig:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE.format(extra=extra, trunk=""))
    return load({"SIP_EDGE_CONFIG": str(path), "CONTROL_KEY": "k" * 32})


def test_workers_control_apis_take_fixed_ports_after_the_edges_own(tmp_path: Path) -> None:
    """Fixed, as their SIP ports are: a host's firewall admits the edge's user to exactly these, never the kernel's
    ephemeral range (docs/sip.md#on-kubernetes)."""
    assert controlled(tmp_path, f"workers = 3\n{CONTROL}").worker_control_port == 5081  # control_port + 1 unless set
    assert controlled(tmp_path, f"workers = 3\n{CONTROL}worker_control_port = 6000").worker_control_port == 6000
    assert edge(tmp_path, "workers = 3").worker_control_port == 0  # no control API of the edge's: none of theirs
    assert controlled(tmp_path, CONTROL).worker_control_port == 0  # one process, no front: its own control_port


@pytest.mark.parametrize(("extra", "names"), [
    (f"workers = 3\n{CONTROL}worker_control_port = 40100", "40100-40102 .* the RTP range"),
    (f"workers = 3\n{CONTROL}worker_control_port = 5078", "control ports 5078-5080 .* overlapping control_port"),
    ('workers = 3\ncontrol_port = 5059\ncontrol_secret_env = "CONTROL_KEY"', "5060-5062 .* overlapping sip_port"),
    (f"workers = 3\n{CONTROL}worker_control_port = 65534", "65534-65536 .* past port 65535"),
])
def test_workers_control_ports_that_collide_are_refused_naming_the_key(tmp_path: Path, extra: str, names: str) -> None:
    with pytest.raises(ConfigError, match=f"worker_control_port: the workers.*{names}"):
        controlled(tmp_path, extra)


def test_calls_over_tls_need_one_worker_since_the_front_never_dials_out_over_tls(tmp_path: Path) -> None:
    config = edge(tmp_path, "workers = 2")
    calling = dataclasses.replace(config, trunks=(dataclasses.replace(
        config.trunks[0], termination_uri="sip:pbx.example.com;transport=tls"),))
    with pytest.raises(ConfigError, match=r"trunk 'carrier' places calls over TLS .* needs workers = 1"):
        check_workers("edge.toml", calling)
    check_workers("edge.toml", dataclasses.replace(config, trunks=(dataclasses.replace(
        config.trunks[0], termination_uri="sip:pbx.example.com"),)))  # over UDP: through the front


def test_a_worker_index_comes_only_from_the_edge_and_must_be_one_of_its_workers(tmp_path: Path) -> None:
    config = edge(tmp_path, "workers = 2")
    assert worker_index({}, config) is None
    assert worker_index({"SIP_EDGE_WORKER": "1"}, config) == 1
    with pytest.raises(ConfigError, match="not a worker of 2"):
        worker_index({"SIP_EDGE_WORKER": "2"}, config)


def test_a_worker_takes_the_fronts_word_for_the_source_and_nobody_elses() -> None:
    front = FRONT.address
    invite = (f"INVITE sip:x@y SIP/2.0\r\nVia: a\r\n{SOURCE_HEADER}: 192.0.2.7\r\n{SIGNED}\r\n"
              f"v=0\r\n{SOURCE_HEADER}: 1.2.3.4\r\n")  # the body is not the head
    assert true_source(front, invite, FRONT) == "192.0.2.7:0"
    assert true_source("127.0.0.1:40000", invite, FRONT) == "127.0.0.1:40000"  # not the front: its own address
    assert true_source(front, invite, None) == front  # a lone edge has no front
    assert true_source(front, f"OPTIONS sip:x SIP/2.0\r\n{SIGNED}\r\n", FRONT) == front
    assert true_source(front, f"BYE x SIP/2.0\r\n{SOURCE_HEADER}: 2001:db8::1\r\n{SIGNED}\r\n",
                       FRONT) == "[2001:db8::1]:0"


# Named, not the tokens themselves: a random parameter would differ between xdist's workers' collections.
@pytest.mark.parametrize("kind", ["none", "another", "cut"])
def test_from_the_fronts_own_address_without_its_token_a_worker_believes_no_line(kind: str) -> None:
    """A local user can bind the front's address too (SO_REUSEADDR): only the token tells the front apart."""
    token = {"none": "", "another": f"{TOKEN_HEADER}: {new_token()}\r\n",
             "cut": f"{TOKEN_HEADER}: {TOKEN[:-1]}\r\n"}[kind]
    forged = f"INVITE sip:x@y SIP/2.0\r\n{SOURCE_HEADER}: 192.0.2.7\r\n{TRANSPORT_HEADER}: tls\r\n{token}\r\n"
    assert true_source(FRONT.address, forged, FRONT) == FRONT.address
    assert not front_hop_was_tls(FRONT.address, forged, FRONT)


def test_the_token_is_stripped_from_what_a_worker_passes_on() -> None:
    invite = f"INVITE sip:x@y SIP/2.0\r\nVia: a\r\n{SIGNED}\r\nv=0\r\n{TOKEN_HEADER}: in the body\r\n"
    assert without_token(invite) == f"INVITE sip:x@y SIP/2.0\r\nVia: a\r\n\r\nv=0\r\n{TOKEN_HEADER}: in the body\r\n"
    assert TOKEN not in without_token(invite.replace("\r\n", "\n"))


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
def test_kamailio_accepts_the_configuration_the_edge_writes(tmp_path: Path) -> None:
    config = dataclasses.replace(edge(tmp_path, "workers = 3"), sip_address="127.0.0.1")  # one of this host's
    files = write_front(config, tmp_path, 3, TOKEN)
    checked = subprocess.run([KAMAILIO, "-c", "-f", str(files.config)], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = files.config.read_text()
    assert f'append_hf("{TOKEN_HEADER}: {TOKEN}\\r\\n");' in text and files.config.stat().st_mode & 0o077 == 0
    assert "src_ip == 192.0.2.0/24" in text  # the trunk's sources, allowed by Kamailio itself
    # A sender's Call-ID (a folded header's CR/LF) is never written raw into a log line of the config's.
    logged = [line for line in text.splitlines() if "xlog(" in line]
    assert logged and not [line for line in logged if "$ci " in line or "$ci:" in line], logged
    assert any("$(ci{s.urlencode.param})" in line for line in logged)
    assert files.workers.read_text().splitlines() == [
        f"1 sip:127.0.0.1:{5061 + index} 0 0 duid=w{index};maxload=3" for index in range(3)]


OTHER_TRUNK = '\n[[trunk]]\nname = "other"\nsources = ["198.51.100.0/24"]\nnumbers = { "+14155550198" = "" }\n'


@pytest.mark.parametrize(("workers", "setting", "shares"), [
    (3, "", (5, 5)),  # 9 slots: half, rounded up, each
    (2, "unanswered_invites = 1", (1, 3)),  # the first trunk's own; the other's the default
    (1, "unanswered_invites = 3\ninbound_digest_username = \"pbx\"\ninbound_digest_password_env = \"PBX_PASSWORD\"",
     (3, 2)),  # one worker behind the front (a trunk's inbound credential): 3 slots
])
def test_each_trunks_share_of_invites_waiting_for_a_workers_answer_is_its_own_or_half_the_slots(
        tmp_path: Path, workers: int, setting: str, shares: tuple[int, int]) -> None:
    config = edge(tmp_path, f"workers = {workers}", setting + OTHER_TRUNK)
    text = write_front(config, tmp_path, 3, TOKEN).config.read_text()
    assert [f'$var(trunk) = "trunk{index}"; $var(share) = {share};' in text
            for index, share in enumerate(shares)] == [True, True], text


def test_a_share_of_no_invite_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unanswered_invites"):
        edge(tmp_path, "workers = 2", "unanswered_invites = 0")


SHARING_TRUNK = '\n[[trunk]]\nname = "sharing"\nsources = ["192.0.2.7/32"]\nnumbers = { "+14155550198" = "" }\n'
CREDENTIAL_TRUNK = ('\n[[trunk]]\nname = "pbx"\nnumbers = { "+14155550198" = "" }\ninbound_digest_username = "pbx"\n'
                    'inbound_digest_password_env = "PBX_PASSWORD"\n')


@pytest.mark.parametrize(("trunks", "expected"), [
    # The front knows the second trunk's INVITEs as the first's, which is listed before it: its setting bounds none.
    (SHARING_TRUNK + "unanswered_invites = 1\n", "trunk 'sharing' sets unanswered_invites, but its source "
     "192.0.2.7/32 overlaps trunk 'carrier''s 192.0.2.0/24, listed before it"),
    (CREDENTIAL_TRUNK + "unanswered_invites = 1\n", "trunk 'pbx' sets unanswered_invites without sources"),
])
def test_a_share_that_would_bound_none_of_its_trunks_invites_is_refused_naming_why(
        tmp_path: Path, trunks: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        edge(tmp_path, "workers = 2", trunks)
    # Unset there, or set on the trunk the front counts them against: taken, the second trunk's INVITEs sharing it.
    config = edge(tmp_path, "workers = 2", "unanswered_invites = 2\n" + trunks.replace("unanswered_invites = 1\n", ""))
    assert [t.unanswered_invites for t in config.trunks] == [2, None]


def test_behind_a_cloud_address_kamailio_binds_the_private_one_and_names_the_public_one(tmp_path: Path) -> None:
    config = dataclasses.replace(edge(tmp_path, 'workers = 3\npublic_address = "203.0.113.7"'),
                                 sip_address="127.0.0.1")
    assert config.advertised == "203.0.113.7"
    files = write_front(config, tmp_path, 3, TOKEN)
    checked = subprocess.run([KAMAILIO, "-c", "-f", str(files.config)], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "listen=udp:127.0.0.1:5060 advertise 203.0.113.7:5060\n" in files.config.read_text()
    assert edge(tmp_path).advertised == "10.0.0.5"  # unset: the bound address itself


def test_kamailio_is_given_no_secret_of_the_edge_only_its_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EDGE_SECRET", "control-secret")
    monkeypatch.setenv("PBX_PASSWORD", "secret")
    supervisor = Supervisor(edge(tmp_path, "workers = 2"))
    try:
        children = {child.name: child for child in supervisor._children()}
        cfg = (supervisor._folder / "kamailio.cfg").read_text()
        assert supervisor._folder.stat().st_mode & 0o077 == 0  # the token's file is the edge's user's only
    finally:
        shutil.rmtree(supervisor._folder, ignore_errors=True)
    assert children["kamailio"].env == {"PATH": os.environ["PATH"]}
    assert children["worker 1"].env["SIP_EDGE_SECRET"] == "control-secret"  # a worker is the edge: it needs them
    token = children["worker 0"].env[TOKEN_VARIABLE]
    assert len(token) >= 40 and children["worker 1"].env[TOKEN_VARIABLE] == token and f": {token}\\r" in cfg
    assert token not in str(children["kamailio"].argv)
    # A worker's own INVITE's token: the workers' and the front's file's, never the one the front sends the workers.
    call_token = children["worker 0"].env[CALL_TOKEN_VARIABLE]
    assert len(call_token) >= 40 and call_token != token and f'"{call_token}"' in cfg
    assert cfg.count(call_token) == 1 and children["worker 1"].env[CALL_TOKEN_VARIABLE] == call_token
    again = Supervisor(edge(tmp_path, "workers = 2"))
    shutil.rmtree(again._folder, ignore_errors=True)
    assert again._token != token  # a new one at each start
    # The refusal lines' mark: in the private file alone, neither the workers' token nor in their environment.
    mark = supervisor._mark
    assert f"sipedge-front-refused {mark} 403 from $si" in cfg and mark != token and again._mark != mark
    assert mark not in str(children["kamailio"].argv)
    assert all(mark not in value for child in children.values() for value in child.env.values())


def test_a_worker_reads_the_fronts_line_in_a_head_of_bare_lf_lines_and_never_one_in_the_body() -> None:
    front = FRONT.address
    # As Kamailio relays a sender's bare-LF message: its own lines appended with CRLF, then the LF blank line.
    relayed = (f"INVITE sip:x@y SIP/2.0\nVia: a\nContent-Type: multipart/mixed\n{SOURCE_HEADER}: 198.51.100.9\r\n"
               f"{SIGNED}\nv=0\n{SOURCE_HEADER}: 192.0.2.7\n")
    assert true_source(front, relayed, FRONT) == "198.51.100.9:0"
    assert true_source(front, f"BYE x SIP/2.0\n{SOURCE_HEADER}: 198.51.100.9\n{SIGNED}\n", FRONT) == "198.51.100.9:0"

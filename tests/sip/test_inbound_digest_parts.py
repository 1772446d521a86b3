"""A trunk's inbound digest credential without a running edge: the file's checks, the kamailio.cfg it renders
(which Kamailio itself must accept), and Kamailio's environment, which holds its password and no other secret."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sipedge import supervisor as supervisor_module
from sipedge.config import ConfigError, InboundDigest, load
from sipedge.front_config import DIGEST_REALM, write_front
from sipedge.supervisor import KAMAILIO, Supervisor, front_env
from sipedge.worker_place import Front, Place, place
from tests.sip.test_front_parts import edge

DIGEST = 'inbound_digest_username = "pbx"\ninbound_digest_password_env = "PBX_PASSWORD"'
OTHER = """
[[trunk]]
name = "other"
sources = ["{source}"]
numbers = {{ "+14155550100" = "" }}
"""


def test_a_trunks_inbound_credential_is_its_username_and_its_passwords_variable(tmp_path: Path) -> None:
    config = edge(tmp_path, "workers = 2", DIGEST)
    assert config.trunks[0].inbound_digest == InboundDigest("pbx", "PBX_PASSWORD")
    assert "secret" not in repr(config)  # the file names the variable; the password stays in the environment
    assert edge(tmp_path, "workers = 2").trunks[0].inbound_digest is None


@pytest.mark.parametrize(("extra", "trunk", "expected"), [
    ("workers = 2", 'inbound_digest_username = "pbx"', "needs both inbound_digest_username and"),
    ("workers = 2", 'inbound_digest_password_env = "PBX_PASSWORD"', "needs both inbound_digest_username and"),
    ("workers = 2", 'inbound_digest_username = "pbx"\ninbound_digest_password_env = "UNSET_PASSWORD"',
     "the environment variable UNSET_PASSWORD is unset or empty"),
    ("workers = 2", 'inbound_digest_username = "p\\"bx"\ninbound_digest_password_env = "PBX_PASSWORD"',
     "inbound_digest_username: String should match pattern"),
    ("workers = 2", 'inbound_digest_username = "pbx"\ninbound_digest_password_env = "$PBX"',
     "inbound_digest_password_env: String should match pattern"),
    ("", DIGEST + '\nregistrar = "sip:registrar.example"\ndigest_username = "u"\ndigest_password_env = "PBX_PASSWORD"',
     "a trunk with a registrar needs an edge without Kamailio's front (workers = 1, and no inbound digest credential: "
     "trunk 'carrier' has one"),
    ("workers = 2", DIGEST + OTHER.format(source="192.0.2.128/25"),
     "trunk 'carrier''s source 192.0.2.0/24 overlaps trunk 'other''s 192.0.2.128/25"),
])
def test_a_credential_the_front_could_not_check_is_refused_naming_the_way_out(
        tmp_path: Path, extra: str, trunk: str, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        edge(tmp_path, extra, trunk)
    assert expected in str(refused.value)


def test_a_one_worker_edge_runs_the_front_for_a_credential_and_only_for_one(tmp_path: Path) -> None:
    """A trunk's inbound credential is the front's to check, so a one-worker edge runs Kamailio before its worker
    on a port of its own, with the whole RTP range; without a credential it is one PJSIP process as ever."""
    fronted = dataclasses.replace(edge(tmp_path, "", DIGEST), front_token="t" * 43, call_token="c" * 43)
    assert fronted.workers == 1 and fronted.front
    assert place(fronted, 0) == Place("127.0.0.1", 5061, 40000, 200, Front("10.0.0.5:5060", "t" * 43, "c" * 43))
    alone = edge(tmp_path)
    assert not alone.front and alone.worker_sip_port == 0
    assert edge(tmp_path, "workers = 2").front


def test_a_missing_kamailio_names_the_credential_that_asks_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_module, "KAMAILIO", str(tmp_path / "no-kamailio"))
    with pytest.raises(SystemExit) as stopped:
        asyncio.run(Supervisor(edge(tmp_path, "", DIGEST)).run())
    assert str(stopped.value) == (
        f"sipedge: trunk 'carrier''s inbound digest credential (docs/sip.md#inbound-digest) needs Kamailio at "
        f"{tmp_path / 'no-kamailio'} (Debian's kamailio package), or leave inbound_digest_username out")


def test_a_trunk_with_a_credential_needs_numbers(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('sip_address = "10.0.0.5"\nworkers = 2\n[[trunk]]\nname = "out"\n'
                    f'termination_uri = "sip:trunk.example"\n{DIGEST}\n')
    with pytest.raises(ConfigError, match="give it numbers, or leave the inbound credential out"):
        load({"SIP_EDGE_CONFIG": str(path), "PBX_PASSWORD": "secret"})


def test_another_trunk_on_sources_of_its_own_keeps_its_own_way(tmp_path: Path) -> None:
    config = edge(tmp_path, "workers = 2", DIGEST + OTHER.format(source="198.51.100.0/24"))
    assert [t.inbound_digest is not None for t in config.trunks] == [True, False]


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
def test_kamailio_accepts_the_challenge_and_the_cfg_holds_no_password(tmp_path: Path) -> None:
    config = edge(tmp_path, "workers = 2", DIGEST)
    files = write_front(config, tmp_path, 3, "t" * 43)
    checked = subprocess.run([KAMAILIO, "-c", "-f", str(files.config)], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = files.config.read_text()
    assert 'loadmodule "auth.so"' in text and "secret" not in text
    assert f'pv_proxy_authenticate("{DIGEST_REALM}", "$env(PBX_PASSWORD)", "0")' in text
    assert 'if ($au == "pbx")' in text and 'src_ip == 192.0.2.0/24' in text
    # Challenged before anything looks at the source's trunk or the number, and never handed to a worker.
    route = text.index("request_route {")
    assert text.index("route(DIGEST);", route) < text.index("no trunk allows this source", route)
    assert text.index("consume_credentials();") < text.index("route[TO_WORKER]")
    (tmp_path / "plain").mkdir()
    plain = write_front(edge(tmp_path, "workers = 2"), tmp_path / "plain", 3, "t" * 43).config.read_text()
    assert "auth.so" not in plain and "route(DIGEST)" not in plain  # no credential: the front as before


def test_kamailio_is_given_the_inbound_passwords_and_no_other_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EDGE_SECRET", "control-secret")
    monkeypatch.setenv("PBX_PASSWORD", "secret")
    supervisor = Supervisor(edge(tmp_path, "workers = 2", DIGEST))
    try:
        children = {child.name: child for child in supervisor._children()}
    finally:
        shutil.rmtree(supervisor._folder, ignore_errors=True)
    assert children["kamailio"].env == {"PATH": os.environ["PATH"], "PBX_PASSWORD": "secret"}
    assert "secret" not in str(children["kamailio"].argv)
    assert front_env({"PATH": "/bin", "PBX_PASSWORD": "p", "OTHER": "o"}, edge(tmp_path, "workers = 2")) == {
        "PATH": "/bin"}


def test_a_worker_loads_the_file_without_the_inbound_password_the_edge_itself_needs(tmp_path: Path) -> None:
    """The supervisor leaves the inbound passwords out of its workers' environment (only Kamailio checks them), so
    a worker's load does not ask for them; the edge's own still does, and a worker's still checks the rest."""
    edge(tmp_path, "workers = 2", DIGEST)  # writes edge.toml, loaded with the password
    env = {"SIP_EDGE_CONFIG": str(tmp_path / "edge.toml")}
    assert load(env, inbound_passwords=False).trunks[0].inbound_digest == InboundDigest("pbx", "PBX_PASSWORD")
    with pytest.raises(ConfigError, match="PBX_PASSWORD is unset or empty"):
        load(env)


def test_an_inbound_password_under_20_characters_is_refused_naming_how_to_make_one(tmp_path: Path) -> None:
    edge(tmp_path, "workers = 2", DIGEST)
    env = {"SIP_EDGE_CONFIG": str(tmp_path / "edge.toml")}
    with pytest.raises(ConfigError, match=r"\(PBX_PASSWORD\) is 19 characters, under 20.*openssl rand -base64 24"):
        load({**env, "PBX_PASSWORD": "x" * 19})
    assert load({**env, "PBX_PASSWORD": "x" * 20}).trunks[0].inbound_digest is not None

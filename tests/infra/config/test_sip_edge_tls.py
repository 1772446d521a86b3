"""SIP over TLS and SRTP on a cloud stack's edge (sipEdge.tlsPort, docs/sip.md#in-the-cloud): the port held to
the trunks' sources by each cloud's firewall, the certificate and key read from the secret store into files
only the edge's user reads, the edge's own loader taking the file and those files, and what cannot work
refused at preview."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sipedge.config import CONFIG_VARIABLE
from sipedge.config import load as load_edge
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import TLS_FOLDER, stand_in_pair
from stacks.shared import sip_edge_host
from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import EDGE, NAME, TWILIO_SIGNALLING, assert_nft_takes, run_with_edge
from tests.infra.azure.test_sip_edge import NAME as AZURE_NAME
from tests.infra.azure.test_sip_edge import NSG, run_azure_edge
from tests.infra.azure.test_sip_edge import _pack_found as azure_pack_found
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import _firewall as gcp_firewall
from tests.infra.gcp.test_sip_edge import _pack_found as gcp_pack_found
from tests.infra.gcp.test_sip_edge import run_gcp_edge
from tests.sip.certificates import TestCa


@cache
def _pair() -> tuple[str, str]:
    return stand_in_pair()


@cache
def _ca() -> str:
    return _new_ca()  # a CA of the test's own, the trunk's certificate's issuer


def _new_ca() -> str:
    with tempfile.TemporaryDirectory() as folder:
        return TestCa(Path(folder)).certificate.read_text()


def _tls_secrets() -> dict[str, str]:
    certificate, key = _pair()
    return {"voicefleet:sipEdgeTlsCertificate": certificate, "voicefleet:sipEdgeTlsPrivateKey": key}


# Twilio's secure trunking: TLS both ways, SRTP required.
TRUNK = {**EDGE["trunks"][0], "terminationUri": "sips:example.pstn.twilio.com", "srtp": "mandatory"}


def _tls_edge(**changes: Any) -> dict[str, Any]:
    return {**EDGE, "tlsPort": 5061, "tlsCaCertificates": _ca(), "trunks": [TRUNK], **changes}


def _aws(stack: StackRunner, edge: dict[str, Any] | None = None, **secrets: str) -> Run:
    return run_with_edge(stack, _tls_edge() if edge is None else edge, secrets={**_tls_secrets(), **secrets})


def _aws_rules(run: Run, typ: str) -> set[tuple[Any, ...]]:
    return {(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"], r.inputs.get("cidrIpv4"))
            for r in run.of_type(f"aws:vpc/{typ}:{typ[0].upper()}{typ[1:]}")
            if r.inputs["securityGroupId"] == f"{NAME}-id"}


def _user_data(run: Run) -> str:
    return str(unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"])


def test_aws_opens_tcp_tls_port_to_the_trunks_sources_only(stack: StackRunner) -> None:
    run = _aws(stack)
    tls = {rule for rule in _aws_rules(run, "securityGroupIngressRule") if rule[0] == "tcp" and rule[1] != 5080}
    assert tls == {("tcp", 5061, 5061, source) for source in TWILIO_SIGNALLING}
    # The edge dials a sips: URI over TLS: TCP out to the trunks' sources, no wider.
    assert {("tcp", 5061, 5061, source) for source in TWILIO_SIGNALLING} <= _aws_rules(run, "securityGroupEgressRule")
    from tests.infra.aws.test_sip_edge import _policy_found

    assert _policy_found(run) == []  # the pack takes SIP over TLS from the trunks' sources
    opened = {"ipProtocol": "tcp", "fromPort": 5061, "toPort": 5061, "cidrIpv4": "0.0.0.0/0",
              "description": "sip edge: tls-9 (SIP over TLS on TCP 5061)"}
    assert ["r opens SIP over TLS (TCP 5061) to 0.0.0.0/0 (toll-fraud scanners): the trunks' sources only on the "
            "SIP edge"] == _policy_found(run, opened)
    plain = run_with_edge(stack)
    kinds = ("securityGroupIngressRule", "securityGroupEgressRule")
    assert not any(rule[0] == "tcp" and rule[3] in TWILIO_SIGNALLING
                   for typ in kinds for rule in _aws_rules(plain, typ))


def test_gcp_opens_tcp_tls_port_to_the_trunks_sources_only_and_the_pack_takes_it(stack: StackRunner) -> None:
    rules = gcp_firewall(run_gcp_edge(stack, _tls_edge(), secrets=_tls_secrets()))
    assert rules["tls"]["allows"] == [{"protocol": "tcp", "ports": ["5061"]}]
    assert rules["tls"]["sourceRanges"] == sorted(TWILIO_SIGNALLING)
    assert rules["tcp-out"]["destinationRanges"] == sorted(TWILIO_SIGNALLING)
    assert gcp_pack_found(*rules.values()) == []
    found = gcp_pack_found({**rules["tls"], "sourceRanges": ["0.0.0.0/0"]})
    assert len(found) == 1 and "opens SIP over TLS (TCP 5061) to 0.0.0.0/0" in found[0]
    assert not {"tls", "tcp-out"} & set(gcp_firewall(run_gcp_edge(stack)))


def test_azure_opens_tcp_tls_port_to_the_trunks_sources_only_and_the_pack_takes_it(stack: StackRunner) -> None:
    group = unwrap(run_azure_edge(stack, _tls_edge(), secrets=_tls_secrets()).one(NSG, AZURE_NAME).inputs)
    rules = {rule["name"]: rule for rule in group["securityRules"]}
    tls = rules["tls-in"]
    assert (tls["protocol"], tls["destinationPortRange"], tls["access"]) == ("Tcp", "5061", "Allow")
    assert tls["sourceAddressPrefixes"] == sorted(TWILIO_SIGNALLING)
    assert rules["tcp-out"]["destinationAddressPrefixes"] == sorted(TWILIO_SIGNALLING)
    assert azure_pack_found(group) == []
    opened = {**group, "securityRules": [{**rule, "sourceAddressPrefixes": ["0.0.0.0/0"]} if rule is tls else rule
                                         for rule in group["securityRules"]]}
    assert any("opens SIP over TLS (TCP 5061) to 0.0.0.0/0" in found for found in azure_pack_found(opened))
    plain = unwrap(run_azure_edge(stack).one(NSG, AZURE_NAME).inputs)
    assert not {"tls-in", "tcp-out"} & {rule["name"] for rule in plain["securityRules"]}


_INSTALL_LOGGED = ('install() { echo "install $*" >> "$log"; local kept=(); while [ $# -gt 0 ]; do case "$1" in '
                   '-o|-g) shift 2;; *) kept+=("$1"); shift;; esac; done; command install "${kept[@]}"; }')


def _boot_tls(script: str, folder: Path, fetch: str) -> subprocess.CompletedProcess[str]:
    """The boot's secret lines run as written, into `folder` for TLS_FOLDER: `chown` and `install` logged, and
    `install` run without its owner and group (the test's user may not give files away)."""
    start = script.index(f"chmod 0644 {sip_edge_host.CONFIG}\n")
    section = script[start:script.index(f"cat > {sip_edge_host.FIREWALL}", start)].split("\n", 1)[1]
    body = "\n".join(["set -euo pipefail", "umask 077", f"log={folder}/log", 'sleep() { :; }',
                      'chown() { echo "chown $*" >> "$log"; }', _INSTALL_LOGGED, fetch,
                      section.replace(sip_edge_host.SECRETS, str(folder / "secrets.env")).replace(TLS_FOLDER,
                                                                                                   str(folder))])
    return subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_host_reads_the_pair_from_the_store_into_the_edges_files_and_the_edge_loads_them(
        stack: StackRunner, tmp_path: Path) -> None:
    certificate, key = _pair()
    run = _aws(stack)
    script = _user_data(run)
    assert key not in script and certificate not in script  # in the secret store only
    stored = {unwrap(r.inputs["secretString"]) for r in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    assert {certificate, key} <= stored
    values = {"SIP_EDGE_TLS_CERTIFICATE": certificate, "SIP_EDGE_TLS_PRIVATE_KEY": key}
    cases = " ".join(f"{name}) cat <<'PEM'\n{value}PEM\n;;" for name, value in values.items())
    fetch = f'fetch() {{ case "$1" in {cases} *) echo {"x" * 48};; esac; }}'
    booted = _boot_tls(script, tmp_path, fetch)
    assert booted.returncode == 0, booted.stderr
    log = (tmp_path / "log").read_text()
    assert f"install -d -m 0750 -o root -g {sip_edge_host.EDGE_UID} {tmp_path}" in log
    for name, value in values.items():
        written = tmp_path / ("edge.crt" if "CERT" in name else "edge.key")
        assert written.read_text() == value and stat.S_IMODE(written.stat().st_mode) == 0o400
        edges = f"-o {sip_edge_host.EDGE_UID} -g {sip_edge_host.EDGE_UID}"
        assert f"install -m 0400 {edges} /dev/stdin {written}.new" in log
        assert name not in (tmp_path / "secrets.env").read_text()  # a file, not a variable
    assert (tmp_path / "trunk-cas.pem").read_text().strip() == _ca().strip()
    assert f"-v {TLS_FOLDER}:{TLS_FOLDER}:ro" in script
    # The edge's own loader, with the file the stack wrote and the files the boot wrote.
    config = script.split("<<'EDGE'\n", 1)[1].split("EDGE\n", 1)[0]
    assert "tls_port = 5061\n" in config and "tls_port_firewalled = true\n" in config
    assert 'srtp = "mandatory"\n' in config
    (tmp_path / "edge.toml").write_text(config.replace(TLS_FOLDER, str(tmp_path)))
    environment = dict(line.split("=", 1) for line in (tmp_path / "secrets.env").read_text().splitlines())
    loaded = load_edge({CONFIG_VARIABLE: str(tmp_path / "edge.toml"), **environment,
                        "SIP_EDGE_CREDENTIAL": _credential()})
    assert loaded.tls is not None and loaded.tls.port == 5061 and loaded.tls.ca_file == str(tmp_path / "trunk-cas.pem")
    assert loaded.trunks[0].srtp == "mandatory"


def _credential() -> str:
    from dispatcher.phone.edge_secret import EdgeSecret

    return EdgeSecret("x" * 48).edge_credential("http://10.0.0.10:5080")


def test_the_host_caps_each_sources_tls_connections(stack: StackRunner, tmp_path: Path) -> None:
    script = _user_data(_aws(stack))
    rules = script.split("<<'NFT'\n", 1)[1].split("NFT\n", 1)[0]
    assert "tcp dport 5061 ct state new add @per_source { ip saddr ct count over 8 } drop" in rules
    assert "tcp dport 5061 ct state new ct count over 32 drop" in rules
    assert_nft_takes(rules, tmp_path)
    assert "sipedge_tls" not in _user_data(run_with_edge(stack))


def test_the_front_takes_tls_with_debians_tls_module_one_pjsip_process_without_kamailio(stack: StackRunner) -> None:
    alone = _user_data(_aws(stack))
    assert "kamailio" not in alone.split("<<'CONTAINERFILE'", 1)[1].split("CONTAINERFILE\n", 1)[0]
    fronted = _user_data(_aws(stack, _tls_edge(workers=2, trunks=[{**TRUNK, "terminationUri": None}],
                                               tlsCaCertificates=None)))
    assert "--no-install-recommends kamailio kamailio-tls-modules" in fronted
    assert "kamailio-tls-modules" not in _user_data(run_with_edge(stack, {**EDGE, "workers": 2}))


NO_PAIR = {"voicefleet:sipEdgeTlsCertificate": None, "voicefleet:sipEdgeTlsPrivateKey": None}


@pytest.mark.parametrize(("edge", "secrets", "said"), [
    (_tls_edge(tlsPort=5060), None, "tlsPort: 5060 is taken"),
    (_tls_edge(tlsPort=5080), None, "tlsPort: 5080 is taken"),
    (_tls_edge(tlsPort=40100), None, "tlsPort: 40100 is taken (SIP 5060/udp, the control API 5080, RTP 40000-40399)"),
    (_tls_edge(), {"voicefleet:sipEdgeTlsPrivateKey": None}, "sipEdgeTlsPrivateKey is required with the other"),
    (_tls_edge(), {"voicefleet:sipEdgeTlsCertificate": None}, "sipEdgeTlsCertificate is required with the other"),
    (_tls_edge(), NO_PAIR, "tlsPort needs the edge's certificate and private key"),
    (_tls_edge(workers=2), None, "trunks.twilio: places calls or registers over TLS"),
    ({**EDGE, "trunks": [{**TRUNK, "srtp": "off"}]}, NO_PAIR, "trunk twilio's srtp or its sips:/transport=tls URI "
                                                             "needs tlsPort"),
    ({**EDGE, "trunks": [{**TRUNK, "terminationUri": None}]}, NO_PAIR, "trunk twilio's srtp"),
    ({**EDGE, "trunks": [{**TRUNK, "terminationUri": None, "srtp": "off"}]}, None,
     "sipEdgeTlsCertificate needs tlsPort"),
    (_tls_edge(tlsCaCertificates=None), None, "calls over TLS check the trunk's certificate against "
                                              "tlsCaCertificates"),
    (_tls_edge(tlsCaCertificates="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), None,
     "tlsCaCertificates: must be PEM certificates only"),
    (_tls_edge(tlsVerifyClient=True, tlsCaCertificates=None, trunks=[{**TRUNK, "terminationUri": None}]), None,
     "tlsVerifyClient needs tlsCaCertificates"),
    (_tls_edge(), {"voicefleet:sipEdgeTlsPrivateKey": "wrong"}, "the edge would refuse it: tls_certificate_file"),
])
def test_a_tls_key_that_cannot_work_is_refused_at_preview_naming_the_way_forward(
        stack: StackRunner, edge: dict[str, Any], secrets: dict[str, Any] | None, said: str) -> None:
    given = {**_tls_secrets(), **(secrets or {})}
    with pytest.raises(SettingsError) as refused:
        run_with_edge(stack, edge, secrets={name: value for name, value in given.items() if value is not None})
    assert said in str(refused.value)


def test_a_key_of_another_certificate_is_refused_at_preview(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="the edge would refuse it: tls_certificate_file .* are not a PEM "
                                            "certificate and its unencrypted private key"):
        _aws(stack, **{"voicefleet:sipEdgeTlsPrivateKey": stand_in_pair()[1]})


def test_the_pair_in_plain_text_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="sipEdgeTlsPrivateKey is stored in plain text"):
        run_with_edge(stack, _tls_edge(), secrets=_tls_secrets(), plaintext=("voicefleet:sipEdgeTlsPrivateKey",))


def test_kubernetes_refuses_tls_naming_a_vm_edge(stack: StackRunner) -> None:
    from tests.infra.k8s.test_sip_edge import K8S_EDGE, run_k8s_edge

    with pytest.raises(SettingsError, match="caps each source's new connections a second, which a VM's host loads "
                                            r".*a Kubernetes pod cannot load one on its node"):
        run_k8s_edge(stack, {**K8S_EDGE, **_tls_edge()}, secrets=_tls_secrets())


def test_the_key_table_names_the_pair_as_secrets() -> None:
    from stacks.config.key_table import SECRET_KEYS

    assert {"sipEdgeTlsCertificate", "sipEdgeTlsPrivateKey"} <= SECRET_KEYS


def test_a_ca_bundle_past_ec2s_user_data_limit_is_refused_naming_its_size(stack: StackRunner) -> None:
    """The CAs are written from the boot script, which EC2 caps at 16,384 bytes: 32 CAs (the edge's most) of
    ~600 bytes pass it, and the refusal names what they take."""
    bundle = "".join(_new_ca() for _ in range(32))
    written = len(sip_edge_host._ca_file(bundle).encode())  # base64 in the script
    with pytest.raises(SettingsError, match=f"its tlsCaCertificates take {written:,} bytes"):
        _aws(stack, _tls_edge(tlsCaCertificates=bundle))


def test_tcp_egress_is_each_dialling_trunks_uri_port_to_its_own_sources(stack: StackRunner) -> None:
    """A trunk dialled over TLS on a port its URI names opens that port alone; a trunk that only takes calls
    over UDP opens no TCP out to its sources."""
    udp_only = {"name": "carrier", "sources": ["192.0.2.0/24"], "mediaSources": ["192.0.2.0/24"],
                "numbers": {"+14155550100": "team-a"}}
    dialled = {**TRUNK, "terminationUri": "sip:example.pstn.twilio.com:5071;transport=tls"}
    run = _aws(stack, _tls_edge(trunks=[dialled, udp_only]))
    tcp_out = {rule for rule in _aws_rules(run, "securityGroupEgressRule")
               if rule[0] == "tcp" and rule[3] != "0.0.0.0/0"}
    assert tcp_out == {("tcp", 5071, 5071, source) for source in TWILIO_SIGNALLING}

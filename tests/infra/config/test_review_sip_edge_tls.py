"""A hostile review of SIP over TLS on a cloud stack's edge (sipEdge.tlsPort): what a stranger on the internet
or a careless change can do with it. Each test states what should hold and is a strict xfail while it does not;
the reasons name the severity and the fix."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import TWILIO_SIGNALLING, _policy_found, run_with_edge
from tests.infra.azure.test_sip_edge import NAME as AZURE_NAME
from tests.infra.azure.test_sip_edge import NSG, run_azure_edge
from tests.infra.azure.test_sip_edge import _pack_found as azure_pack_found
from tests.infra.config.test_sip_edge_tls import _aws, _aws_rules, _tls_edge, _tls_secrets
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import _firewall as gcp_firewall
from tests.infra.gcp.test_sip_edge import _pack_found as gcp_pack_found
from tests.infra.gcp.test_sip_edge import run_gcp_edge

# --- The policy pack's relaxation -------------------------------------------------------------------------------

def _tcp_rule(port: int, cidr: str) -> dict[str, Any]:
    return {"ipProtocol": "tcp", "fromPort": port, "toPort": port, "cidrIpv4": cidr, "description": "sip edge: x"}


def test_the_pack_refuses_tcp_ports_other_than_sip_over_tls_on_the_edge(stack: StackRunner) -> None:
    run = _aws(stack)
    assert _policy_found(run, _tcp_rule(6379, "203.0.113.0/24")) != []  # Redis on the edge, from a /24
    assert _policy_found(run, _tcp_rule(2222, "198.51.100.0/24")) != []  # an SSH on another port
    rules = gcp_firewall(run_gcp_edge(stack, _tls_edge(), secrets=_tls_secrets()))
    assert gcp_pack_found({**rules["tls"], "allows": [{"protocol": "tcp", "ports": ["6379"]}],
                           "sourceRanges": ["203.0.113.0/24"]}) != []


# --- Egress: TCP out to the trunks' sources ---------------------------------------------------------------------

def test_tcp_egress_reaches_only_the_tls_port_the_trunks_dial(stack: StackRunner) -> None:
    aws = {rule for rule in _aws_rules(_aws(stack), "securityGroupEgressRule")
           if rule[0] == "tcp" and rule[3] in TWILIO_SIGNALLING}
    assert aws == {("tcp", 5061, 5061, source) for source in TWILIO_SIGNALLING}
    gcp = gcp_firewall(run_gcp_edge(stack, _tls_edge(), secrets=_tls_secrets()))
    assert gcp["tcp-out"]["allows"] == [{"protocol": "tcp", "ports": ["5061"]}]
    group = unwrap(run_azure_edge(stack, _tls_edge(), secrets=_tls_secrets()).one(NSG, AZURE_NAME).inputs)
    (azure,) = [rule for rule in group["securityRules"] if rule["name"] == "tcp-out"]
    assert azure["destinationPortRange"] == "5061"
    assert azure_pack_found(group) == []


def test_an_edge_that_only_answers_tls_opens_no_tcp_out(stack: StackRunner) -> None:
    inbound_only = _tls_edge(trunks=[{**_tls_edge()["trunks"][0], "terminationUri": None, "srtp": "optional"}],
                             tlsCaCertificates=None)
    run = run_with_edge(stack, inbound_only, secrets=_tls_secrets())
    assert not {rule for rule in _aws_rules(run, "securityGroupEgressRule")
                if rule[0] == "tcp" and rule[3] in TWILIO_SIGNALLING}


# --- Refusals at preview ----------------------------------------------------------------------------------------

def _pair(*, not_before: datetime.datetime, not_after: datetime.datetime) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip-edge.example.com")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(not_before)
                   .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def test_an_expired_certificate_is_refused_at_preview(stack: StackRunner) -> None:
    now = datetime.datetime.now(datetime.UTC)
    certificate, key = _pair(not_before=now - datetime.timedelta(days=400), not_after=now - datetime.timedelta(days=1))
    with pytest.raises(SettingsError, match="expire"):
        _aws(stack, **{"voicefleet:sipEdgeTlsCertificate": certificate, "voicefleet:sipEdgeTlsPrivateKey": key})


def _ed25519_pair() -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip-edge.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=90)).sign(key, None))
    return (certificate.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def test_a_key_type_the_edges_pjsip_cannot_serve_is_refused_at_preview(stack: StackRunner) -> None:
    certificate, key = _ed25519_pair()
    with pytest.raises(SettingsError, match="sipEdgeTls"):
        _aws(stack, **{"voicefleet:sipEdgeTlsCertificate": certificate, "voicefleet:sipEdgeTlsPrivateKey": key})


# --- The boot's write of the key --------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_boot_does_not_follow_a_link_planted_in_the_tls_folder(stack: StackRunner, tmp_path: Path) -> None:
    from tests.infra.config.test_sip_edge_tls import _boot_tls, _user_data
    from tests.infra.config.test_sip_edge_tls import _pair as tls_pair

    certificate, key = tls_pair()
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "edge.key.new").symlink_to(victim)  # planted by the folder's owner
    cases = (f"SIP_EDGE_TLS_CERTIFICATE) cat <<'PEM'\n{certificate}PEM\n;; "
             f"SIP_EDGE_TLS_PRIVATE_KEY) cat <<'PEM'\n{key}PEM\n;;")
    fetch = f'fetch() {{ case "$1" in {cases} *) echo {"x" * 48};; esac; }}'
    _boot_tls(_user_data(_aws(stack)), folder, fetch)
    assert victim.read_text() == "root's file\n"


# --- tlsCaCertificates, written from the boot script ------------------------------------------------------------

_NOT_A_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
# A line `CAS` ends the boot script's heredoc (cat > trunk-cas.pem <<'CAS'); the lines after it run as root.
_ENDS_THE_HEREDOC = "-----BEGIN CERTIFICATE-----\nCAS\nreboot\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("cas", [_NOT_A_CERTIFICATE, _ENDS_THE_HEREDOC], ids=["not-a-certificate", "ends-heredoc"])
def test_a_ca_bundle_that_is_not_certificates_is_refused_at_preview(stack: StackRunner, cas: str) -> None:
    with pytest.raises(SettingsError, match="tlsCaCertificates"):
        _aws(stack, _tls_edge(tlsCaCertificates=cas))

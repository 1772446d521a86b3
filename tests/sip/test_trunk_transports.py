"""A trunk's registrar and termination_uri over a transport the edge opens (UDP; TLS with tls_port), refused
at start otherwise: PJSUA fails a REGISTER to any other before sending it and never reports it, so the edge's
status would say `registering` for ever (docs/sip.md, "Is the edge up?")."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipedge.config import ConfigError, load
from tests.sip.certificates import TestCa
from tests.sip.test_edge_parts import config
from tests.sip.test_tls_config import files

TRUNK = """
[[trunk]]
name = "pbx"
sources = ["10.0.0.0/24"]
numbers = { "+14155550199" = "" }
digest_username = "edge"
digest_password_env = "PBX_PASSWORD"
"""


@pytest.mark.parametrize(("line", "said"), [
    ('registrar = "sip:pbx.example.com;transport=tcp"',
     r"trunk 'pbx': registrar sip:pbx.example.com;transport=tcp: the edge speaks SIP over UDP \(and TLS with "
     r"tls_port\), not TCP: give the trunk's UDP address"),
    ('registrar = "sip:pbx.example.com:5060;transport=SCTP;lr"', r"trunk 'pbx': registrar .* not SCTP"),
    ('registrar = "sips:pbx.example.com"',
     r"trunk 'pbx': registrar sips:pbx.example.com is over TLS, which the edge opens only with tls_port: register "
     r"over UDP \(sip: without ;transport=tls\), or turn TLS on"),
    ('registrar = "sip:pbx.example.com;transport=tls"', r"trunk 'pbx': registrar .* is over TLS, .* turn TLS on"),
    ('registrar = "pbx.example.com"', r"trunk.0.registrar: String should match pattern"),
    ('termination_uri = "sip:pbx.example.com;transport=tcp"', r"trunk 'pbx': termination_uri .* not TCP"),
])
def test_a_trunk_over_a_transport_the_edge_does_not_open_is_refused_naming_the_way_out(
    tmp_path: Path, line: str, said: str,
) -> None:
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, TRUNK + line + "\n", PBX_PASSWORD="secret"))


def test_a_registrar_over_udp_or_over_tls_with_tls_on_loads(tmp_path: Path) -> None:
    for registrar in ("sip:pbx.example.com", "sip:10.0.0.5:5070;transport=udp"):
        (trunk,) = load(config(tmp_path, TRUNK + f'registrar = "{registrar}"\n', PBX_PASSWORD="secret")).trunks
        assert trunk.registrar == registrar
    ca = TestCa(tmp_path, "registrar CA").certificate
    secured = files(tmp_path) + f'tls_ca_file = "{ca}"\n' + TRUNK + 'registrar = "sips:pbx.example.com"\n'
    assert load(config(tmp_path, secured, PBX_PASSWORD="secret")).trunks[0].registrar == "sips:pbx.example.com"


def test_registering_over_tls_needs_the_registrars_ca_in_tls_ca_file(tmp_path: Path) -> None:
    """The edge checks every server it reaches over TLS, against tls_ca_file alone."""
    with pytest.raises(ConfigError, match=r"trunk 'pbx': calls and registrations over TLS need tls_ca_file"):
        load(config(tmp_path, files(tmp_path) + TRUNK + 'registrar = "sips:pbx.example.com"\n',
                    PBX_PASSWORD="secret"))

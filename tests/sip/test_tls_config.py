"""The edge's TLS and SRTP settings (docs/sip.md#tls-and-srtp): what loads, and what is refused with
the way to fix it, before PJSIP is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sipedge.config import ConfigError, Tls, load
from sipedge.outbound_sip import target_uri
from sipedge.srtp_offer import srtp_refusal
from tests.sip.test_edge_parts import config

TRUNK = """
[[trunk]]
name = "office"
sources = ["10.0.0.0/24"]
numbers = { "+14155550199" = "" }
"""


def files(tmp_path: Path, key_mode: int = 0o600) -> str:
    """TLS settings naming a certificate and a key (their content is PJSIP's to read, not the loader's)."""
    (tmp_path / "edge.crt").write_text("certificate")
    (tmp_path / "edge.key").write_text("key")
    os.chmod(tmp_path / "edge.key", key_mode)
    return (f'tls_port = 5061\ntls_certificate_file = "{tmp_path / "edge.crt"}"\n'
            f'tls_private_key_file = "{tmp_path / "edge.key"}"\n')


def test_tls_and_a_trunks_srtp_load(tmp_path: Path) -> None:
    edge = load(config(tmp_path, files(tmp_path) + TRUNK + 'srtp = "mandatory"\n'))
    assert edge.tls == Tls(5061, str(tmp_path / "edge.crt"), str(tmp_path / "edge.key"))
    assert edge.trunks[0].srtp == "mandatory"
    assert load(config(tmp_path, TRUNK)).tls is None  # unset: no TLS, SRTP off
    assert load(config(tmp_path, TRUNK)).trunks[0].srtp == "off"


@pytest.mark.parametrize(("settings", "trunk", "said"), [
    ("", 'srtp = "always"\n', "trunk.0.srtp: Input should be 'off', 'optional' or 'mandatory'"),
    ("", 'srtp = "optional"\n', "need tls_port: PJSIP sends SRTP keys"),
    ("", 'termination_uri = "sips:sip.telnyx.com"\n', "trunk 'office': SRTP and a sips:/transport=tls"),
    ('tls_port = 5061\n', "", "tls_port needs tls_certificate_file and tls_private_key_file"),
    ('tls_certificate_file = "/etc/hostname"\n', "", "tls_certificate_file need tls_port"),
    ("FILES tls_verify_client = true\n", "", "tls_verify_client needs tls_ca_file"),
    ("FILES workers = 2\n", "", "tls_port needs workers = 1"),
    ("FILES tls_ca_file = \"/nonexistent/ca.pem\"\n", "", "tls_ca_file: /nonexistent/ca.pem cannot be read"),
    ("FILES tls_cipher = \"x\"\n", "", "tls_cipher: Extra inputs are not permitted"),
    ("FILES", 'termination_uri = "sip:pbx.example.com"\nsrtp = "optional"\n',
     "srtp on its calls needs a termination_uri over TLS"),
])
def test_tls_settings_that_cannot_work_say_what_to_change(
    tmp_path: Path, settings: str, trunk: str, said: str,
) -> None:
    text = settings.replace("FILES", files(tmp_path)) + TRUNK + trunk
    with pytest.raises(ConfigError, match=said):
        load(config(tmp_path, text))


@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_a_private_key_every_user_may_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ConfigError, match=r"open to every user .* run `chmod o-rwx .*edge.key`"):
        load(config(tmp_path, files(tmp_path, mode) + TRUNK))
    assert load(config(tmp_path, files(tmp_path, 0o640) + TRUNK)).tls is not None  # its group may (ssl-cert)


@pytest.mark.parametrize(("uri", "called"), [
    ("sip:example.pstn.twilio.com;transport=tls", "sip:+14155550100@example.pstn.twilio.com;transport=tls"),
    ("sips:sip.telnyx.com", "sips:+14155550100@sip.telnyx.com"),
])
def test_a_trunks_calls_over_tls_keep_its_uri_scheme_and_transport(tmp_path: Path, uri: str, called: str) -> None:
    text = files(tmp_path) + TRUNK + f'termination_uri = "{uri}"\nsrtp = "optional"\n'
    assert target_uri(load(config(tmp_path, text)).trunks[0], "+14155550100") == called


@pytest.mark.parametrize(("over_tls", "own_account", "refused"), [
    (True, True, None),
    (False, True, "came without TLS"),  # keys sent in the clear protect nothing, whatever the Via says
    (True, False, "no SRTP account"),  # PJSIP's account of the edge, SRTP only optional there
])
def test_a_mandatory_srtp_trunk_takes_calls_over_tls_on_its_numbers_account_only(
    over_tls: bool, own_account: bool, refused: str | None,
) -> None:
    reason = srtp_refusal("mandatory", over_tls, own_account)
    assert reason is None if refused is None else refused in (reason or ""), reason
    assert srtp_refusal("optional", over_tls, own_account) is None and srtp_refusal("off", False, False) is None

"""The edge's TLS and SRTP settings (docs/sip.md#tls-and-srtp): what loads, and what is refused with
the way to fix it, before PJSIP is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sipedge.config import ConfigError, Tls, load
from sipedge.outbound_sip import target_uri
from sipedge.secure_ciphers import forward_secret
from sipedge.secure_sip import tls_transport
from sipedge.srtp_offer import offers_keys, offers_srtp, srtp_refusal
from tests.sip.certificates import TestCa
from tests.sip.test_edge_parts import config

TRUNK = """
[[trunk]]
name = "office"
sources = ["10.0.0.0/24"]
numbers = { "+14155550199" = "" }
"""


def files(tmp_path: Path, key_mode: int = 0o600, firewalled: bool = True) -> str:
    """TLS settings naming a certificate and its key, issued by a CA of the test's own, as edge.crt
    and edge.key in `tmp_path`."""
    if not (tmp_path / "edge.key").exists():
        issued = TestCa(tmp_path).issue("edge")
        issued.certificate.rename(tmp_path / "edge.crt")
        issued.private_key.rename(tmp_path / "edge.key")
    os.chmod(tmp_path / "edge.key", key_mode)
    return (f'tls_port = 5061\ntls_certificate_file = "{tmp_path / "edge.crt"}"\n'
            f'tls_private_key_file = "{tmp_path / "edge.key"}"\n'
            + ("tls_port_firewalled = true\n" if firewalled else ""))


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


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o660])
def test_a_private_key_other_users_may_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ConfigError, match=r"open to other users .* run `chmod 600 .*edge.key`"):
        load(config(tmp_path, files(tmp_path, mode) + TRUNK))
    assert load(config(tmp_path, files(tmp_path, 0o600) + TRUNK)).tls is not None


def test_tls_port_needs_the_operators_word_that_it_is_firewalled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_port needs tls_port_firewalled = true.*abort the edge"):
        load(config(tmp_path, files(tmp_path, firewalled=False) + TRUNK))


GARBAGE_PEM = "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("broken", ["key", "certificate", "another key"])
def test_a_key_or_certificate_that_cannot_work_stops_the_edge_at_start(tmp_path: Path, broken: str) -> None:
    settings = files(tmp_path)
    if broken == "another key":  # a key of its own, not the certificate's
        (tmp_path / "edge.key").write_bytes(TestCa(tmp_path, "other CA").issue("x").private_key.read_bytes())
    else:
        (tmp_path / ("edge.key" if broken == "key" else "edge.crt")).write_text(GARBAGE_PEM)
    with pytest.raises(ConfigError, match=r"are not a PEM certificate and its unencrypted private key"):
        load(config(tmp_path, settings + TRUNK))


def test_calling_a_trunk_over_tls_needs_its_ca_in_tls_ca_file(tmp_path: Path) -> None:
    """Never unchecked, and never against the system's whole bundle, which the listener would name to
    every client (no handshake then completes)."""
    text = files(tmp_path) + TRUNK + 'termination_uri = "sips:sip.telnyx.com"\n'
    with pytest.raises(ConfigError, match=r"trunk 'office': calls and registrations over TLS need tls_ca_file"):
        load(config(tmp_path, text))


def test_the_listener_names_no_cas_when_tls_ca_file_is_unset_and_checks_servers_always(tmp_path: Path) -> None:
    """PJSIP's listener sends its whole CA list to every client: with the system's, no handshake completed."""
    edge = load(config(tmp_path, files(tmp_path) + TRUNK))
    assert edge.tls is not None
    transport = tls_transport(edge.tls, "127.0.0.1", [0xC02F], "127.0.0.1")
    listener = transport.tlsConfig  # SWIG's view into `transport`, which must outlive it
    assert (listener.CaListFile, listener.verifyServer, listener.verifyClient) == ("", True, False)
    assert list(listener.ciphers) == [0xC02F]


def test_the_listener_binds_the_private_address_and_names_the_public_one(tmp_path: Path) -> None:
    """On a cloud host the interface holds a private address its provider translates the public one to:
    a trunk calling over TLS must be told the public one in Contact and Via, as over UDP."""
    edge = load(config(tmp_path, files(tmp_path) + TRUNK))
    assert edge.tls is not None
    transport = tls_transport(edge.tls, "10.0.1.5", [0xC02F], "203.0.113.7")
    assert (transport.boundAddress, transport.publicAddress) == ("10.0.1.5", "203.0.113.7")


def test_the_edge_offers_forward_secret_suites_only() -> None:
    """Static RSA key exchange (AES128-SHA 0x2F, AES128-GCM-SHA256 0x9C) and anonymous ECDH (0xC019)
    are left out; ECDHE with RSA or ECDSA and AES-GCM stay."""
    # Asked in a process of its own: a PJSUA2 library created and destroyed in the test's process leaves it
    # aborting at the next test's AudioMediaPort (tests/sip/test_byte_vector.py, on the same worker).
    asked = ("import json, pjsua2 as pj\nendpoint = pj.Endpoint()\nendpoint.libCreate()\n"
             "print(json.dumps(list(endpoint.utilSslGetAvailableCiphers())))\nendpoint.libDestroy()\n")
    ran = subprocess.run([sys.executable, "-c", asked], capture_output=True, text=True, timeout=60, check=True)
    available = next(json.loads(line) for line in ran.stdout.splitlines() if line.startswith("["))  # PJSIP logs too
    chosen = forward_secret(available)
    assert {0x2F, 0x9C, 0xC019} <= set(available) and not {0x2F, 0x9C, 0xC019} & set(chosen)
    assert {0xC02F, 0xC02B, 0xC030, 0xC02C} <= set(chosen)


@pytest.mark.parametrize(("uri", "called"), [
    ("sip:example.pstn.twilio.com;transport=tls", "sip:+14155550100@example.pstn.twilio.com;transport=tls"),
    ("sips:sip.telnyx.com", "sips:+14155550100@sip.telnyx.com"),
])
def test_a_trunks_calls_over_tls_keep_its_uri_scheme_and_transport(tmp_path: Path, uri: str, called: str) -> None:
    ca_file = f'tls_ca_file = "{tmp_path / "voicefleet-test-CA.pem"}"\n'
    text = files(tmp_path) + ca_file + TRUNK + f'termination_uri = "{uri}"\nsrtp = "optional"\n'
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


def test_an_srtp_offer_to_a_trunk_whose_srtp_is_off_is_refused_and_a_plain_one_taken() -> None:
    for over_tls in (False, True):
        assert "plain RTP" in (srtp_refusal("off", over_tls, False, keyed=True) or "")
        assert srtp_refusal("off", over_tls, False, keyed=False) is None
    assert srtp_refusal("optional", False, False, keyed=True) is None


@pytest.mark.parametrize(("sdp", "srtp"), [
    ("v=0\r\nm=audio 4000 RTP/SAVP 0\r\n", True),
    ("v=0\r\nm=audio 4000 RTP/SAVPF 0\r\n", True),
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n", False),
    ("v=0\r\nm=audio 0 RTP/SAVP 0\r\nm=audio 4000 RTP/AVP 0\r\n", False),  # the disabled stream does not count
    ("v=0\r\nm=video 4002 RTP/SAVP 31\r\nm=audio 4000 RTP/AVP 0\r\n", False),
    ("", False),
])
def test_an_offer_is_srtp_by_its_first_live_audio_streams_profile(sdp: str, srtp: bool) -> None:
    assert offers_srtp(sdp) is srtp


def test_a_best_effort_offer_to_an_off_trunk_is_refused_only_where_the_shared_account_would_key_it() -> None:
    assert "best effort" in (srtp_refusal("off", False, False, keys=True, account_keys=True) or "")
    assert srtp_refusal("off", False, False, keys=True, account_keys=False) is None  # PJSIP answers plain RTP
    assert srtp_refusal("optional", False, False, keys=True, account_keys=True) is None


@pytest.mark.parametrize(("sdp", "keys"), [
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n", True),
    ("v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n", True),
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", False),
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 31\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
     False),  # keys on another stream: not the audio's
    ("v=0\r\nm=audio 0 RTP/AVP 0\r\na=crypto:1 X inline:x\r\nm=audio 4000 RTP/AVP 0\r\n", False),
    ("", False),
])
def test_an_offer_carries_keys_by_its_first_live_audio_stream(sdp: str, keys: bool) -> None:
    assert offers_keys(sdp) is keys


def test_a_ca_file_as_big_as_a_system_bundle_is_refused(tmp_path: Path) -> None:
    """PJSIP would name every CA of it to each TLS client, and no handshake would complete."""
    bundle = tmp_path / "bundle.pem"
    issuer = TestCa(tmp_path)
    bundle.write_bytes(issuer.certificate.read_bytes() * 33)
    with pytest.raises(ConfigError, match=r"holds 33 CAs, more than 32: .* give only your trunks' CAs"):
        load(config(tmp_path, files(tmp_path) + f'tls_ca_file = "{bundle}"\n' + TRUNK))
    bundle.write_bytes(issuer.certificate.read_bytes() * 32)
    assert load(config(tmp_path, files(tmp_path) + f'tls_ca_file = "{bundle}"\n' + TRUNK)).tls is not None

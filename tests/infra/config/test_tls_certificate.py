"""The edge's certificate read as its PJSIP serves it (stacks/config/tls_certificate.py): real certificates made
with cryptography, each key type and date the preview refuses or warns of."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from stacks.config.tls_certificate import CertificateRefused, served_certificate_warning

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _certificate(key: PrivateKey, starts: datetime.datetime,
                 ends: datetime.datetime) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip-edge.example.com")])
    made = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(starts).not_valid_after(ends)
            .sign(key, hashes.SHA256()))
    return made.public_bytes(serialization.Encoding.PEM).decode()


def test_rsa_2048_and_the_p256_and_p384_curves_are_served_without_a_word() -> None:
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1()),
                ec.generate_private_key(ec.SECP384R1())):
        assert served_certificate_warning(_certificate(key, NOW - DAY, NOW + 90 * DAY), NOW) is None


@pytest.mark.parametrize(("key", "said"), [(lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),
                                           (lambda: ec.generate_private_key(ec.SECP521R1()), "ECDSA key on secp521r1")])
def test_a_short_rsa_key_or_another_curve_is_refused_naming_it(key: Callable[[], PrivateKey], said: str) -> None:
    with pytest.raises(CertificateRefused, match=said):
        served_certificate_warning(_certificate(key(), NOW - DAY, NOW + 90 * DAY), NOW)


def test_a_certificate_not_valid_yet_is_refused_naming_its_start() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateRefused, match="not valid before 2026-06-03"):
        served_certificate_warning(_certificate(key, NOW + 2 * DAY, NOW + 90 * DAY), NOW)


def test_a_certificate_near_its_end_is_warned_of_and_one_past_it_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    warning = served_certificate_warning(_certificate(key, NOW - 80 * DAY, NOW + 10 * DAY), NOW)
    assert warning is not None and "expires on 2026-06-11" in warning
    with pytest.raises(CertificateRefused, match="expired on 2026-05-31"):
        served_certificate_warning(_certificate(key, NOW - 80 * DAY, NOW - DAY), NOW)

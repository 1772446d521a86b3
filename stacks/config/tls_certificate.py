"""The edge's certificate read as its PJSIP will serve it, at preview (docs/sip.md#tls-in-the-cloud): the edge's
loader checks the pair with the operator's OpenSSL 3, which takes keys and dates PJSIP's OpenSSL 1.0.2k (or a
trunk) will not, and a pair refused there fails every TLS handshake on the host with the edge up and silent."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Under this many days left, the preview warns: the certificate must be renewed (and the stack updated) soon.
RENEW_WITHIN_DAYS = 14
SMALLEST_RSA_BITS = 2048
# The curves OpenSSL 1.0.2 serves and public CAs issue; Ed25519 and Ed448 came with OpenSSL 1.1.1.
SERVED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_SERVED = "an RSA key of 2048 bits or more, or an ECDSA key on P-256 or P-384"


class CertificateRefused(ValueError):
    """The certificate cannot work on the edge; its text names why and what to give instead."""


def served_certificate_warning(certificate: str, now: datetime.datetime) -> str | None:
    """The leaf (the PEM's first certificate) checked: a key type PJSIP cannot serve, or `now` outside its dates,
    raises CertificateRefused; under RENEW_WITHIN_DAYS left, a warning's text is returned."""
    leaf = x509.load_pem_x509_certificates(certificate.encode())[0]
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < SMALLEST_RSA_BITS:
            raise CertificateRefused(f"holds an RSA key of {key.key_size} bits: the edge serves {_SERVED}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, SERVED_CURVES):
            raise CertificateRefused(f"holds an ECDSA key on {key.curve.name}: the edge serves {_SERVED}")
    else:
        raise CertificateRefused(f"holds a {type(key).__name__.removesuffix('PublicKey')} key, which the edge's "
                                 f"PJSIP (OpenSSL 1.0.2k) cannot serve: give it {_SERVED}")
    starts, ends = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < starts:
        raise CertificateRefused(f"is not valid before {starts:%Y-%m-%d %H:%M} UTC: every handshake would fail until "
                                 "then; give a certificate valid now")
    if now >= ends:
        raise CertificateRefused(f"expired on {ends:%Y-%m-%d %H:%M} UTC: every trunk's handshake would fail; renew "
                                 "it and set it again (pulumi config set --secret … < edge.crt)")
    if ends - now < datetime.timedelta(days=RENEW_WITHIN_DAYS):
        return (f"the edge's certificate expires on {ends:%Y-%m-%d %H:%M} UTC, in under {RENEW_WITHIN_DAYS} days: "
                "renew it and run pulumi up before then, or every TLS call fails from that moment")
    return None


def ca_bundle_problem(bundle: str) -> str | None:
    """What is wrong with tlsCaCertificates, read as PJSIP reads them (each a CA certificate), or None: a bundle that
    fails there fails every TLS handshake on the host, the edge up and saying nothing."""
    try:
        certificates = x509.load_pem_x509_certificates(bundle.encode())
    except ValueError as exc:
        return (f"holds a block that is not a certificate ({exc}): give the CAs' PEM certificates as their providers "
                "publish them")
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            return (f"holds {certificate.subject.rfc4514_string()}, which is not a CA (no BasicConstraints CA:TRUE): "
                    "give the CA its provider names, not a server's certificate")
    return None

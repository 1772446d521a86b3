"""A bot channel's certificates as the Kubernetes stack shapes them (stacks/k8s/channel_tls.py): a private
CA, and a leaf it signs for the dispatcher's channel Service names, with 127.0.0.1 beside them so a test
on loopback dials the URL a local dispatcher hands its bots."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_NAMES = ("dispatcher.voicefleet.svc", "dispatcher.voicefleet.svc.cluster.local")


@dataclass(frozen=True)
class ChannelCerts:
    ca: Path  # the CA's certificate (public): what the bots trust
    cert: Path  # the leaf's chain (leaf, then CA)
    key: Path  # the leaf's private key
    ca_key: Path  # the CA's private key (the stack's stays in its state): what a renewed CA certificate keeps


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def channel_certs(folder: Path, label: str = "channel") -> ChannelCerts:
    """A CA and its leaf, written under `folder` as `<label>-ca.crt`, `<label>.crt`, `<label>.key`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = ca_certificate(ca_key, f"{label} CA")
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(name) for name in SERVICE_NAMES] + [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    leaf = (x509.CertificateBuilder().subject_name(_name(SERVICE_NAMES[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    found = ChannelCerts(folder / f"{label}-ca.crt", folder / f"{label}.crt", folder / f"{label}.key",
                         folder / f"{label}-ca.key")
    found.ca.write_bytes(_pem(ca))
    found.cert.write_bytes(_pem(leaf) + _pem(ca))
    found.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    found.key.chmod(0o600)
    found.ca_key.write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return found


def ca_certificate(ca_key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    """A CA certificate for `ca_key`, as pulumi-tls' SelfSignedCert makes one (its subject key id the key's):
    a renewal is another of these for the same key and subject."""
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256()))


def renewed_ca(certs: ChannelCerts, label: str = "channel") -> Path:
    """The CA's certificate renewed (a new one for the same key and subject), written beside the first."""
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    renewed = certs.ca.with_name(f"{label}-ca-renewed.crt")
    renewed.write_bytes(_pem(ca_certificate(ca_key, f"{label} CA")))
    return renewed

"""SIP over TLS and SRTP in PJSUA2's terms (docs/sip.md#tls-and-srtp). The wheel's PJSIP is built
against OpenSSL 1.0.2k, so TLS 1.2 is the newest version it speaks, and the only one the edge allows.
SRTP keys travel in the SDP (SDES, RFC 4568), readable by anyone who reads the signalling, so they
are worth something over TLS only. PJSIP's rule for that (`srtpSecureSignaling`) refuses every call
of an account that does not come over TLS (406), plain RTP included: it holds on the accounts of a
`mandatory` trunk's numbers (sipedge/stack.py) and of a trunk's outbound calls, which go over TLS
whenever the trunk has SRTP (config.py); the edge's own account, shared by every other number, keeps
SRTP optional over any transport."""

from __future__ import annotations

import pjsua2 as pj

from sipedge.config import Srtp, Tls

TLS_HANDSHAKE_MS = 5000
# PJSIP's levels: 0 SDES over any transport, 1 TLS on the hop the INVITE takes (2: sips: end to end).
SIGNALLING_ANY, SIGNALLING_TLS_HOP = 0, 1
_SRTP_USE = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
             "mandatory": pj.PJMEDIA_SRTP_MANDATORY}


def tls_transport(tls: Tls, host: str, ciphers: list[int], public: str) -> pj.TransportConfig:
    """The TLS listener on `host`, which also carries the edge's own calls to a trunk over TLS, with
    `ciphers` only (PJSIP's ids); `public` is the address its Contact and Via name (config.py's
    `advertised`: a cloud host's public address, translated by its provider to `host`)."""
    transport = pj.TransportConfig()
    transport.boundAddress = host
    transport.publicAddress = public
    transport.port = tls.port
    config = transport.tlsConfig
    config.certFile = tls.certificate_file
    config.privKeyFile = tls.private_key_file
    config.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2
    config.msecTimeout = TLS_HANDSHAKE_MS
    # One list for both sides: PJSIP's listener names each of its CAs to every client (a CertificateRequest:
    # with the system's ~140 no handshake completed), and checks by it the trunks the edge calls (config.py
    # requires it then). Unset: no list, and no call out over TLS.
    config.CaListFile = tls.ca_file or ""
    config.verifyServer = True  # a trunk's certificate, when the edge calls it: never unchecked
    config.verifyClient = config.requireClientCert = tls.verify_client
    config.ciphers = pj.IntVector(ciphers)
    return transport


def secure_media(media: pj.AccountMediaConfig, srtp: Srtp, signalling: int) -> None:
    """SRTP with SDES keys on an account's calls, as `srtp` says, over `signalling`'s transports."""
    media.srtpUse = _SRTP_USE[srtp]
    media.srtpSecureSignaling = signalling
    media.srtpOpt.keyings.clear()
    media.srtpOpt.keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)  # not DTLS-SRTP: trunks key by SDES

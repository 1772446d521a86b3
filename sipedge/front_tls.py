"""The front's SIP over TLS (docs/sip.md#tls-and-srtp), with several workers: Kamailio's tls module,
built on the system's OpenSSL 3, takes TLS 1.2 and 1.3 with forward-secret AEAD suites only and the
edge's own certificate, key, CA list and client check, then hands each request to a worker over
loopback UDP as it does the UDP port's, telling it the hop was TLS in TRANSPORT_HEADER. Connections
are capped in number, and each closes after QUIET_SECONDS without traffic unless it carried a call;
requests to a trunk go only on a connection the trunk opened (Kamailio never dials out over TLS, so
never to an unchecked server). The key is read while Kamailio as nobody from descriptors the edge
opened (sipedge/front_key.py): no copy of the key is made."""

from __future__ import annotations

from sipedge.config import EdgeConfig, Tls

# TLS 1.2's suites: ECDHE or DHE with AES-GCM or ChaCha20 (TLS 1.3's are all of that kind already).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1"
METHOD = "TLSv1.2+"  # TLS 1.2 and 1.3; 1.0 and 1.1 refused at the handshake
# All TLS connections at once (Kamailio's default): past it a connect is refused, and the front lives on.
# One source's share is the firewall's to cap (tls_port_firewalled): Kamailio counts all sources together.
MAX_CONNECTIONS = 2048
SILENT_SECONDS = 10  # the tls module's limit on a handshake begun and left unfinished
# Any connection without traffic for that long is closed, a bare connect that never sent a byte too (the
# tls module's limit does not close those): one source holds the cap's slots only as long as it keeps
# connecting again, which the firewall sees.
QUIET_SECONDS = 30
# A connection that carried a trunk's INVITE the front passed to a worker stays up to a call's longest
# without traffic, as the worker's BYE at the call's end goes on it, however quiet the call was.
CALL_SECONDS = 4 * 3600  # sipedge/front_config.py's CALL_SECONDS
MODULES = ("tls", "nathelper", "tcpops")


def tls_globals(config: EdgeConfig, tls: Tls) -> str:
    """kamailio.cfg's core lines: TCP on for TLS, with no plain TCP listener, and the TLS one; no core dump,
    which would hold the key."""
    advertise = "" if config.advertised == config.sip_address else f" advertise {config.advertised}:{tls.port}"
    return f"""enable_tls=yes
disable_core_dump=yes
tcp_max_connections={MAX_CONNECTIONS}
tls_max_connections={MAX_CONNECTIONS}
tcp_connection_lifetime={QUIET_SECONDS}
listen=tls:{config.sip_address}:{tls.port}{advertise}"""


def tls_params(tls: Tls) -> str:
    """The tls module's server domain: the edge's files, as PJSIP takes them when the edge runs alone (by
    the paths sipedge/front_key.py hands over, when the edge starts Kamailio)."""
    verify = 1 if tls.verify_client else 0
    ca = f'modparam("tls", "ca_list", "{tls.ca_file}")\n' if tls.ca_file else ""
    return f"""modparam("tls", "tls_method", "{METHOD}")
modparam("tls", "certificate", "{tls.certificate_file}")
modparam("tls", "private_key", "{tls.private_key_file}")
{ca}modparam("tls", "verify_certificate", {verify})
modparam("tls", "require_certificate", {verify})
modparam("tls", "cipher_list", "{CIPHERS}")
modparam("tls", "connection_timeout", {SILENT_SECONDS})
modparam("tls", "renegotiation", 0)
modparam("tls", "send_close_notify", 1)"""


def keep_for_the_call() -> str:
    """The request route's line, before an INVITE goes to a worker: its connection, if TLS, lives a call's
    longest from now on (tcpops)."""
    return f"    if (proto == TLS) {{ tcp_set_connection_lifetime({CALL_SECONDS}); }}\n"

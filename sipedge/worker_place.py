"""Where one PJSIP process binds: the edge's own address and ports when it runs alone, or, as one of
several workers behind the edge's Kamailio front, a SIP port of its own on loopback and its share
of the RTP range (RTP still on the edge's address, which its SDP names, so media goes straight
between the trunk and the worker). A worker believes the lines the front writes (SOURCE_HEADER,
TRANSPORT_HEADER) only on requests from the front's address that carry the token the edge made at
start, in TOKEN_HEADER: a local user can bind the front's own address too (Kamailio's socket has
SO_REUSEADDR), but cannot read the token in the front's private kamailio.cfg or the workers'
environment."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from sipedge.config import ConfigError, EdgeConfig

WORKER_VARIABLE = "SIP_EDGE_WORKER"  # set by the edge for each worker it starts: the worker's index
WORKER_HOST = "127.0.0.1"
SOURCE_HEADER = "P-Edge-Source"  # not an X- header: those reach the bot's body (sipedge/call_data.py)
TRANSPORT_HEADER = "P-Edge-Transport"  # the trunk's hop to the front: "udp" or "tls" (sipedge/front_tls.py)
# The inbound digest username the front checked on this INVITE: the worker takes that trunk, whatever the source
# (a trunk with a credential and no sources, docs/sip.md#inbound-digest).
CREDENTIAL_HEADER = "P-Edge-Credential"
# On a worker's refusal for want of a free slot, the one refusal the front tries its next worker on
# (sipedge/front_config.py); the front answers the trunk itself, so the mark never leaves the edge.
FULL_HEADER = "P-Edge-Worker-Full"
TOKEN_HEADER = "P-Edge-Token"  # noqa: S105 - a header's name: the front's proof it wrote the lines above
TOKEN_VARIABLE = "SIP_EDGE_FRONT_TOKEN"  # noqa: S105 - a variable's name: the edge sets it for each worker
# A worker's own INVITE (an outbound call, a transfer's person) carries another token in TOKEN_HEADER, one the
# front never writes: whoever binds a worker's port while it restarts reads the front's token off the trunk's
# next INVITE, and must not have the front call a trunk's termination with it.
CALL_TOKEN_VARIABLE = "SIP_EDGE_CALL_TOKEN"  # noqa: S105 - a variable's name: the edge sets it for each worker
# Lines may end in CRLF or a bare LF (Kamailio and PJSIP take both), and so may the head.
_SOURCE = re.compile(rf"^{SOURCE_HEADER}:[ \t]*(\S+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_TRANSPORT = re.compile(rf"^{TRANSPORT_HEADER}:[ \t]*(\S+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_CREDENTIAL = re.compile(rf"^{CREDENTIAL_HEADER}:[ \t]*(\S+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_TOKEN = re.compile(rf"^{TOKEN_HEADER}:[ \t]*(\S+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_TOKEN_LINE = re.compile(rf"^{TOKEN_HEADER}:[^\n]*\n", re.IGNORECASE | re.MULTILINE)
HEAD_END = re.compile(r"\r?\n\r?\n")


@dataclass(frozen=True)
class Front:
    """What a worker knows of its front: the "host:port" it sends from, the token its lines carry, and the token
    the worker's own INVITEs carry to it (CALL_TOKEN_VARIABLE)."""

    address: str
    token: str = field(repr=False)
    call_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Place:
    sip_host: str
    sip_port: int
    rtp_port: int
    rtp_port_count: int
    front: Front | None  # whose SOURCE_HEADER and TRANSPORT_HEADER are believed; None alone


def place(config: EdgeConfig, worker: int | None) -> Place:
    if worker is None:
        return Place(config.sip_address, config.sip_port, config.rtp_port, config.rtp_port_count, None)
    if not config.front_token:
        raise ConfigError(f"{TOKEN_VARIABLE} is not set: a worker is started by the edge itself, which sets it")
    share = rtp_share(config)
    return Place(WORKER_HOST, config.worker_sip_port + worker, config.rtp_port + worker * share, share,
                 Front(f"{front_host(config.sip_address)}:{config.sip_port}", config.front_token,
                       config.call_token or ""))


def front_host(sip_address: str) -> str:
    """The address the front's requests reach a worker from: on sip_address itself, or, when Kamailio listens on
    every address (0.0.0.0, ::), from loopback, the workers' own address, as the kernel picks the source."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(sip_address).is_unspecified:
            return WORKER_HOST
    return sip_address


def rtp_share(config: EdgeConfig) -> int:
    """Each worker's RTP ports: an even count, so every worker's RTP ports are even and RTCP's odd."""
    return config.rtp_port_count // config.workers // 2 * 2


def worker_index(env: Mapping[str, str], config: EdgeConfig) -> int | None:
    """This process's worker index, or None when it is the edge itself."""
    raw = env.get(WORKER_VARIABLE)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) >= config.workers:
        raise ConfigError(f"{WORKER_VARIABLE}={raw!r}: not a worker of {config.workers} (the edge sets it itself)")
    return int(raw)


def new_token() -> str:
    """A token for one start of the edge (the front's, the workers' calls', the drain's): 256 random bits."""
    return secrets.token_urlsafe(32)


def _front_line(pattern: re.Pattern[str], received_from: str, message: str, front: Front | None) -> str | None:
    """The value of the front's own header line `pattern` names, when the front sent `message`."""
    if front is None or received_from != front.address:
        return None
    head = HEAD_END.split(message, maxsplit=1)[0]  # the front's line is the head's last; the body is the sender's
    tokens = _TOKEN.findall(head)
    if not tokens or not hmac.compare_digest(str(tokens[-1]).encode(), front.token.encode()):
        return None  # from the front's address, but not the front's: a local process bound it too
    found = pattern.findall(head)
    return str(found[-1]) if found else None


def without_token(message: str) -> str:
    """`message` without its head's TOKEN_HEADER lines: what the worker passes on or logs never holds it."""
    end = HEAD_END.search(message)
    split = end.end() if end else len(message)
    return _TOKEN_LINE.sub("", message[:split]) + message[split:]


def front_hop_was_tls(received_from: str, message: str, front: Front | None) -> bool:
    """Whether the front received `message` from the trunk over TLS (it says so in TRANSPORT_HEADER, having
    removed any the trunk wrote); False for a message the front did not send."""
    return (_front_line(_TRANSPORT, received_from, message, front) or "").lower() == "tls"


def true_source(received_from: str, message: str, front: Front | None) -> str:
    """The address a request came from: the front's SOURCE_HEADER when the front sent it."""
    found = _front_line(_SOURCE, received_from, message, front)
    if found is None:
        return received_from
    return f"[{found}]:0" if ":" in found else f"{found}:0"  # PJSIP's "host:port" form


def front_credential(received_from: str, message: str, front: Front | None) -> str | None:
    """The inbound digest username the front checked on `message` (CREDENTIAL_HEADER); None for a request it
    admitted by its source alone, or one the front did not send (a caller's own such line never gets here: the
    front removes it)."""
    return _front_line(_CREDENTIAL, received_from, message, front)

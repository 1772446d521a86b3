"""The edge's trunks, read from the TOML file `SIP_EDGE_CONFIG` names (docs/sip.md#configuration).

The file holds no secret: a trunk's digest password and each number's API key are read from the
environment variables it names, so the file can sit in a repository or a config map.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

from sipedge.drain import DEFAULT_DRAIN_SECONDS, MAX_DRAIN_SECONDS
from sipedge.front_unanswered import MAX_UNANSWERED_INVITES, unreached_setting
from sipedge.inbound_password import short_inbound_password
from sipedge.stream_address import origin
from voicefleet_settings.call_policy import ANY_NUMBER, DESTINATION

CONFIG_VARIABLE = "SIP_EDGE_CONFIG"
EDGE_CREDENTIAL_PREFIX = "vfe1."  # an edge's credential, as the dispatcher derives it (dispatcher/phone/edge_secret.py)
MAX_WORKERS = 64
WORKER_RTP_PORTS = 8  # a worker's PJSIP holds 4 calls, each with an RTP and an RTCP port
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# SRTP (SDES keys in the SDP, RFC 4568) on a trunk's calls: "mandatory" refuses an offer without keys (488).
Srtp = Literal["off", "optional", "mandatory"]
RELEASE_NAME = r"^[a-z0-9][a-z0-9-]{0,31}$"  # as the dispatcher names releases (docs/releases.md)
# Written into kamailio.cfg's strings: no quote, backslash, space or `$` (a Kamailio variable) can get in.
DIGEST_USERNAME = r"^[A-Za-z0-9._~+-]{1,64}$"
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ConfigError(ValueError):
    """The edge's configuration cannot be used; the message says what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberFile(_Strict):
    """A number's table form: its key's variable and the release its calls run (docs/releases.md)."""

    key: str
    release: str | None = Field(default=None, pattern=RELEASE_NAME)


class PriceFile(_Strict):
    """A trunk's price a minute by direction: carriers list inbound (origination) and outbound
    (termination) minutes apart. A direction left out is not priced."""

    inbound: float | None = Field(default=None, ge=0, le=10)
    outbound: float | None = Field(default=None, ge=0, le=10)


# Which form a number's entry takes, told apart by its type so an error names that form's fault alone.
NumberEntry = Annotated[Annotated[str, Tag("variable")] | Annotated[NumberFile, Tag("table")],
                        Discriminator(lambda given: "variable" if isinstance(given, str) else "table")]


# The dispatcher takes a trunk's name in its price lines (usage, bridged legs) up to this long
# (dispatcher/usage/trunk_line.py MAX_TRUNK_CHARS): a longer one would make every report of its calls 422.
MAX_TRUNK_NAME_CHARS = 64


class TrunkFile(_Strict):
    name: str = Field(min_length=1, max_length=MAX_TRUNK_NAME_CHARS)
    # The addresses the trunk's INVITEs come from (CIDR): any other source is answered 403.
    sources: tuple[str, ...] = ()
    # The number (To's user part) → the environment variable holding the API key its calls run as
    # ("" for none: a keyless local dispatcher only), or a table naming that variable and a release.
    numbers: dict[str, NumberEntry] = Field(default_factory=dict)
    # sip:pbx.example.com: the edge registers there with the digest below (over UDP; sips: with tls_port)
    registrar: str | None = Field(default=None, pattern=r"^sips?:[^\s]+$")
    digest_username: str | None = None
    digest_password_env: str | None = None
    # Outbound calls (docs/sip.md#outbound-calls): where their INVITEs go, how many a second the
    # trunk takes (paced by the dispatcher across its replicas), how long one may ring.
    termination_uri: str | None = Field(default=None, pattern=r"^sips?:[^\s]+$")
    cps: float = Field(default=1.0, gt=0, le=1000)
    ring_seconds: float = Field(default=30.0, gt=0, le=300)
    # Who may place calls through it (voicefleet_settings/call_policy.py): API key names; none: it places no calls.
    callers: tuple[str, ...] = ()
    destinations: tuple[str, ...] = (ANY_NUMBER,)  # E.164 patterns: `+1*`, `+14155550100`
    caller_ids: tuple[str, ...] | None = None  # the `from` numbers it shows; unset: its own `numbers`
    srtp: Srtp = "off"
    # What its carrier charges a minute of an answered call (USD), both ways or `{inbound, outbound}`: the
    # session's cost prices the call's minutes by it (docs/sip.md#what-a-call-costs). Unset: not priced.
    usd_per_minute: float | PriceFile | None = Field(default=None, union_mode="left_to_right")
    # The carrier's billing increment: each call's answered time is rounded up to it (Twilio: a whole minute).
    billing_increment_seconds: int = Field(default=60, ge=1, le=60)
    # How soon the edge registers again after its registrar failed or refused it (sipedge/register_retry.py): PJSUA's
    # own retry of a timeout or a server's trouble, and the first of the edge's doubling waits after any other.
    registrar_retry_seconds: int = Field(default=30, ge=2, le=1800)
    # The credential the trunk's own requests must carry (docs/sip.md#inbound-digest): the front challenges each
    # out-of-dialog request from its sources (407) and admits it only with a valid response. Kamailio reads the
    # password from the variable named here ($env): neither this file nor kamailio.cfg holds it.
    inbound_digest_username: str | None = Field(default=None, pattern=DIGEST_USERNAME)
    inbound_digest_password_env: str | None = Field(default=None, pattern=VARIABLE_NAME)
    # With Kamailio's front: how many of its INVITEs may wait for a worker's first answer at once, past which its
    # INVITEs are answered 503 (sipedge/front_unanswered.py). Unset: half the edge's slots, rounded up.
    unanswered_invites: int | None = Field(default=None, ge=1, le=MAX_UNANSWERED_INVITES)

    @field_validator("usd_per_minute")
    @classmethod
    def _price(cls, price: float | PriceFile | None) -> float | PriceFile | None:
        if isinstance(price, float | int) and not 0 <= price <= 10:
            raise ValueError(f"{price} is not a price a minute in USD (0 to 10)")
        return price

    @field_validator("destinations")
    @classmethod
    def _patterns(cls, destinations: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in destinations:
            if not DESTINATION.fullmatch(pattern):
                raise ValueError(f"{pattern!r} is not an E.164 pattern such as \"+1*\" or \"+14155550100\"")
        return destinations

    @field_validator("sources")
    @classmethod
    def _networks(cls, sources: tuple[str, ...]) -> tuple[str, ...]:
        for source in sources:
            ipaddress.ip_network(source, strict=False)  # ValueError names the bad one
        return sources


class EdgeFile(_Strict):
    dispatcher_url: str = "http://127.0.0.1:8080"
    sip_address: str = "127.0.0.1"  # where SIP (UDP) and RTP are bound
    # The variable holding sip_address instead, for a host whose address is known only as the edge starts
    # (a Kubernetes pod on its node's network: the downward API's status.hostIP).
    sip_address_env: str | None = None
    # What SDP, Contact and Via name instead (a cloud host's public address, which its interface does
    # not hold: the provider translates it to `sip_address`); unset: `sip_address` itself.
    public_address: str | None = None
    sip_port: int = Field(default=5060, ge=1, le=65535)
    rtp_port: int = Field(default=40000, ge=1024, le=65535)  # the first RTP port; each call takes two
    rtp_port_count: int = Field(default=200, ge=2, le=30000)
    # How long a caller hears ringing while the bot is claimed or started before the call is refused.
    answer_seconds: float = Field(default=60.0, gt=0, le=300)
    # On SIGTERM, how long the calls in flight may go on while new ones are refused (sipedge/drain.py); 0: hung up
    # at once. Whole seconds, strictly: a stack gives systemd and Kubernetes this plus a margin.
    drain_seconds: int = Field(default=DEFAULT_DRAIN_SECONDS, ge=0, le=MAX_DRAIN_SECONDS, strict=True)
    # Edge workers (PJSIP processes) behind one Kamailio on sip_port; 1: one PJSIP process, no Kamailio, unless a
    # trunk has an inbound digest credential, which only Kamailio checks (front_runs).
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    # Workers' own SIP ports, on loopback from this one (sip_port + 1 when unset): only Kamailio reaches them.
    worker_sip_port: int | None = Field(default=None, ge=1024, le=65535)
    # Workers' own control APIs, TCP on loopback from this one (control_port + 1 when unset): fixed, as their SIP
    # ports are, so a host's firewall admits exactly these to the edge's user (docs/sip.md#on-kubernetes).
    worker_control_port: int | None = Field(default=None, ge=1024, le=65535)
    trunk: tuple[TrunkFile, ...] = Field(min_length=1)
    # The control API the dispatcher hands outbound calls to (sipedge/control.py); unset: none.
    control_address: str = "127.0.0.1"
    control_address_env: str | None = None  # the variable holding control_address instead, as sip_address_env
    control_port: int | None = Field(default=None, ge=1, le=65535)
    control_secret_env: str | None = None  # the variable holding the control key the dispatcher presents
    # The variable holding this edge's own credential, which it presents to the dispatcher
    # (docs/sip.md#edge-credentials); unset: it presents the control key, as an edge of an earlier release did
    # (a dispatcher now refuses that, naming the way out).
    edge_credential_env: str | None = None
    # This edge's control API as the dispatcher's SIP_EDGE_URL lists it (several edges): its calls' streams
    # name it, so that a transfer comes here. Unset: the dispatcher knows it only with one edge.
    control_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+/?$", max_length=512)
    # SIP over TLS (docs/sip.md#tls-and-srtp): unset, none; the certificate and key are PEM files.
    tls_port: int | None = Field(default=None, ge=1, le=65535)
    tls_certificate_file: str | None = None
    tls_private_key_file: str | None = None
    tls_ca_file: str | None = None  # the CAs a client's certificate (tls_verify_client) must chain to
    tls_verify_client: bool = False
    # The operator's word that only the trunks' ranges reach tls_port, with a connection cap per source: PJSIP's
    # TLS listener takes any TCP connection, and churn of them aborts the process; Kamailio's (workers > 1)
    # caps them all together only, so one source could take every slot (docs/sip.md).
    tls_port_firewalled: bool = False

    @field_validator("dispatcher_url")
    @classmethod
    def _dispatcher(cls, url: str) -> str:
        # Outbound calls' streams open here (sipedge/stream_address.py): an origin that can be compared.
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or origin(url) is None or parts.query or parts.fragment:
            raise ValueError("give the dispatcher's address as http(s)://host[:port], with no credentials, "
                             "query or fragment")
        return url


@dataclass(frozen=True)
class Tls:
    port: int
    certificate_file: str
    private_key_file: str
    ca_file: str | None = None
    verify_client: bool = False


@dataclass(frozen=True)
class TrunkPrice:
    """A trunk's minutes, in USD, each way (None: that way is not priced), billed in `increment_seconds`."""

    inbound: float | None
    outbound: float | None
    increment_seconds: int = 60

    def line(self, trunk: str, direction: str) -> dict[str, object] | None:
        """The line the dispatcher keeps with a call's session (dispatcher/usage/trunk_line.py), or None."""
        price = self.inbound if direction == "inbound" else self.outbound
        if price is None:
            return None
        return {"trunk": trunk, "direction": direction, "usd_per_minute": price,
                "increment_seconds": self.increment_seconds}


@dataclass(frozen=True)
class InboundDigest:
    """A trunk's inbound credential: its username, and the variable Kamailio reads its password from."""

    username: str
    password_env: str


@dataclass(frozen=True)
class Trunk:
    name: str
    sources: tuple[Network, ...]
    api_keys: Mapping[str, str | None] = field(repr=False)  # number → its calls' API key
    releases: Mapping[str, str] = field(default_factory=dict)  # number → its calls' release; absent: the default
    registrar: str | None = None
    digest_username: str | None = None
    digest_password: str | None = field(default=None, repr=False)
    termination_uri: str | None = None
    cps: float = 1.0
    ring_seconds: float = 30.0
    callers: tuple[str, ...] = ()
    destinations: tuple[str, ...] = (ANY_NUMBER,)
    caller_ids: tuple[str, ...] = ()
    srtp: Srtp = "off"
    price: TrunkPrice | None = None  # its minutes' price; None: not priced
    registrar_retry_seconds: int = 30  # how soon a failed or refused registration is tried again
    inbound_digest: InboundDigest | None = None  # the credential its own requests must carry; None: its sources do
    # Its INVITEs that may wait for a worker's first answer at once (sipedge/front_unanswered.py); None: the default.
    unanswered_invites: int | None = None


@dataclass(frozen=True)
class EdgeConfig:
    dispatcher_url: str
    sip_address: str
    sip_port: int
    rtp_port: int
    rtp_port_count: int
    answer_seconds: float
    trunks: tuple[Trunk, ...]
    workers: int = 1
    worker_sip_port: int = 0  # the first worker's SIP port on loopback; 0 without a front
    worker_control_port: int = 0  # the first worker's control API on loopback; 0 without a front or control_port
    worker: int | None = None  # which worker this process is (sipedge/worker_place.py); None: the edge itself
    front_token: str | None = field(default=None, repr=False)  # a worker's proof of its front's lines (ditto)
    call_token: str | None = field(default=None, repr=False)  # its own INVITEs' proof to the front (ditto)
    control_address: str = "127.0.0.1"
    control_address_env: str | None = None  # the variable holding control_address instead, as sip_address_env
    control_port: int | None = None
    control_secret: str | None = field(default=None, repr=False)
    edge_credential: str | None = field(default=None, repr=False)  # what it presents to the dispatcher
    control_url: str | None = None  # this edge in the dispatcher's SIP_EDGE_URL, for its calls' transfers
    tls: Tls | None = None
    public_address: str = ""  # what SDP, Contact and Via name; `sip_address` when the file leaves it unset
    drain_seconds: int = DEFAULT_DRAIN_SECONDS  # how long a stop waits for the calls in flight (sipedge/drain.py)

    @property
    def dispatcher_credential(self) -> str | None:
        """What the edge presents to the dispatcher: its own credential, else (an older file) the control key."""
        return self.edge_credential or self.control_secret

    @property
    def front(self) -> bool:
        """Whether the edge runs its Kamailio front before its workers (sipedge/supervisor.py): with several workers,
        or with a trunk whose inbound digest credential only the front checks (docs/sip.md#inbound-digest)."""
        return front_runs(self.workers, any(t.inbound_digest is not None for t in self.trunks))

    @property
    def advertised(self) -> str:
        """The address the trunk is told to send SIP and RTP to."""
        return self.public_address or self.sip_address


def load(env: Mapping[str, str], *, inbound_passwords: bool = True, other_secrets: bool = True) -> EdgeConfig:
    """The configuration `SIP_EDGE_CONFIG` names, its secrets read from `env`. A worker loads it with
    `inbound_passwords` False: only Kamailio checks the trunks' inbound credentials, so the supervisor (which
    checked their variables) leaves them out of the workers' environment. A front run apart from its workers
    (sipedge/edge_part.py) loads it with `other_secrets` False: its environment holds the inbound passwords alone,
    and the numbers' keys, outbound digest passwords, control key and credential are left None."""
    path = env.get(CONFIG_VARIABLE, "")
    if not path:
        raise ConfigError(f"{CONFIG_VARIABLE} is unset: set it to the edge's TOML file (docs/sip.md#configuration)")
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: not TOML ({exc})") from None
    try:
        parsed = EdgeFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: {problems}") from None
    names = [t.name for t in parsed.trunk]
    if len(set(names)) != len(names):
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: trunk names must differ (outbound calls name their trunk)")
    _check_transports(path, parsed)
    sip_address = _address(path, parsed, env, "sip_address")
    trunks = tuple(_trunk(t, env, inbound_passwords, other_secrets) for t in parsed.trunk)
    config = EdgeConfig(parsed.dispatcher_url.rstrip("/"), sip_address, parsed.sip_port, parsed.rtp_port,
                        parsed.rtp_port_count, parsed.answer_seconds, trunks,
                        workers=parsed.workers,
                        worker_sip_port=_worker_sip_port(parsed, any(t.inbound_digest for t in trunks)),
                        worker_control_port=_worker_control_port(parsed, any(t.inbound_digest for t in trunks)),
                        control_address=_address(path, parsed, env, "control_address"),
                        control_port=parsed.control_port,
                        control_secret=_control_secret(parsed, env) if other_secrets else None,
                        edge_credential=_edge_credential(parsed, env) if other_secrets else None,
                        control_url=parsed.control_url.rstrip("/") if parsed.control_url else None,
                        tls=_tls(path, parsed), public_address=_public_address(path, parsed) or sip_address,
                        drain_seconds=parsed.drain_seconds)
    check_workers(path, config)
    _check_inbound_digest(path, config)
    if (unreached := unreached_setting([(t.name, t.sources, t.unanswered_invites) for t in trunks])) is not None:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: {unreached}")
    return config


def _check_inbound_digest(path: str, config: EdgeConfig) -> None:
    """A trunk with an inbound credential (challenged by the front, which runs for it whatever `workers` says): on
    sources of its own, so that a source names one credential and no trunk without one admits what the challenge
    refused, or on none (any address that answers with its credential); its username its own, which picks the
    trunk of a caller from no trunk's sources."""
    digest = [t for t in config.trunks if t.inbound_digest is not None]
    usernames = [t.inbound_digest.username for t in digest if t.inbound_digest is not None]
    if (twice := next((name for name in usernames if usernames.count(name) > 1), None)) is not None:
        named = [t.name for t in digest if t.inbound_digest is not None and t.inbound_digest.username == twice]
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: trunks {named[0]!r} and {named[1]!r} share the "
                          f"inbound_digest_username {twice!r}: give each trunk a username of its own (the username "
                          "a caller answers the challenge with picks its trunk)")
    for trunk in digest:
        for other in config.trunks:
            if other is trunk:
                continue
            shared = next(((a, b) for a in trunk.sources for b in other.sources
                           if a.version == b.version and a.overlaps(b)), None)
            if shared is not None:
                raise ConfigError(f"{CONFIG_VARIABLE}={path}: trunk {trunk.name!r}'s source {shared[0]} overlaps trunk "
                                  f"{other.name!r}'s {shared[1]}: a trunk with an inbound digest credential needs "
                                  "sources no other trunk names (the challenge is the source's trunk's)")


def _address(path: str, parsed: EdgeFile, env: Mapping[str, str], key: str) -> str:
    """`key`'s address: the file's, or the one its `key`_env variable holds (an IP address, checked now
    rather than when PJSIP or the control API fails to bind it). The file's sip_address is an IP address
    too: PJSIP would bind a host name, but the SIP thread's wake-up (sip_wake.py) would then resolve it
    each time, on the event loop."""
    variable: str | None = getattr(parsed, f"{key}_env")
    if variable is None:
        value = str(getattr(parsed, key))
        if key == "sip_address" and not _is_ip(value):
            raise ConfigError(f"{CONFIG_VARIABLE}={path}: sip_address {value!r} is not an IP address: give the "
                              "address to bind (this host's, or \"0.0.0.0\" for all of them), or sip_address_env")
        if key == "sip_address":
            _ipv4_only(f"{CONFIG_VARIABLE}={path}: sip_address", value)
        return value
    if key in parsed.model_fields_set:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: give {key} or {key}_env, not both")
    value = _secret(env, variable, f"{key}_env")
    if not _is_ip(value):
        raise ConfigError(f"{key}_env: the environment variable {variable} holds {value!r}, not an IP address "
                          "of this host")
    if key == "sip_address":
        _ipv4_only(f"sip_address_env: the environment variable {variable}", value)
    return value


def _ipv4_only(where: str, address: str) -> None:
    """SIP and RTP over IPv4 only: PJSIP's transports and the front's loopback hop to its workers are IPv4, and the
    accounts' URIs and Kamailio's listen line name the address unbracketed (docs/sip.md#not-done-yet), so an IPv6
    address would stop PJSIP at start with a resolver's error, or leave the front unable to reach a worker."""
    if _is_ip(address) and ipaddress.ip_address(address).version == 6:
        raise ConfigError(f"{where} {address!r} is an IPv6 address: the edge takes SIP and RTP over IPv4 only "
                          "for now; give this host's IPv4 address, or \"0.0.0.0\" for all of them "
                          "(docs/sip.md#configuration)")


def _public_address(path: str, parsed: EdgeFile) -> str | None:
    """What SDP, Contact and Via name instead of sip_address: an IPv4 address literal, as SDP's `c=IN IP4` needs;
    an IPv6 address in any spelling (bracketed as SIP URIs write it, padded) or a host name is refused at load."""
    where = f"{CONFIG_VARIABLE}={path}: public_address"
    if parsed.public_address is not None:
        _ipv4_only(where, parsed.public_address.strip().strip("[]"))
        try:
            ipaddress.IPv4Address(parsed.public_address)
        except ValueError:
            raise ConfigError(f"{where} {parsed.public_address!r} is not an IPv4 address: give the address the host "
                              "is reached at, as in \"203.0.113.7\", without brackets, spaces or a name "
                              "(docs/sip.md#configuration)") from None
    return parsed.public_address


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# The transports the edge opens (sipedge/stack.py): UDP, and TLS with tls_port. PJSUA fails a request to a URI
# naming another one before sending it, and a registration so failed is never tried again nor reported.
OPENED_TRANSPORTS = ("udp", "tls")


def _check_transports(path: str, parsed: EdgeFile) -> None:
    """Each trunk's registrar and termination_uri over a transport the edge opens."""
    where = f"{CONFIG_VARIABLE}={path}"
    for trunk in parsed.trunk:
        for key in ("registrar", "termination_uri"):
            uri: str | None = getattr(trunk, key)
            if uri is None:
                continue
            named = re.search(r";transport=([^;?>]*)", uri, re.IGNORECASE)
            if named and named.group(1).lower() not in OPENED_TRANSPORTS:
                raise ConfigError(f"{where}: trunk {trunk.name!r}: {key} {uri}: the edge speaks SIP over UDP (and "
                                  f"TLS with tls_port), not {named.group(1).upper()}: give the trunk's UDP address "
                                  "(without ;transport=), or its TLS one (sips:) with tls_port (docs/sip.md#tls-and-"
                                  "srtp)")
        if _tls_uri(trunk.registrar) and parsed.tls_port is None:
            raise ConfigError(f"{where}: trunk {trunk.name!r}: registrar {trunk.registrar} is over TLS, which the edge "
                              "opens only with tls_port: register over UDP (sip: without ;transport=tls), or turn "
                              "TLS on (docs/sip.md#tls-and-srtp)")


def _tls(path: str, parsed: EdgeFile) -> Tls | None:
    """SIP over TLS, its files checked now rather than when PJSIP fails to read them."""
    where = f"{CONFIG_VARIABLE}={path}"
    secured = [t.name for t in parsed.trunk if t.srtp != "off" or _tls_uri(t.termination_uri)]
    outbound = [t.name for t in parsed.trunk
                if t.srtp != "off" and t.termination_uri and not _tls_uri(t.termination_uri)]
    if outbound:
        raise ConfigError(f"{where}: trunk {outbound[0]!r}: srtp on its calls needs a termination_uri over TLS "
                          "(sips:… or …;transport=tls): PJSIP sends SRTP keys only over TLS")
    if parsed.tls_port is None:
        given = [k for k in ("tls_certificate_file", "tls_private_key_file", "tls_ca_file") if getattr(parsed, k)]
        if given or parsed.tls_verify_client:
            raise ConfigError(f"{where}: {', '.join(given) or 'tls_verify_client'} need tls_port (SIP over TLS)")
        if secured:
            raise ConfigError(f"{where}: trunk {secured[0]!r}: SRTP and a sips:/transport=tls termination_uri need "
                              "tls_port: PJSIP sends SRTP keys (in the SDP) only over TLS signalling")
        return None
    if not (parsed.tls_certificate_file and parsed.tls_private_key_file):
        raise ConfigError(f"{where}: tls_port needs tls_certificate_file and tls_private_key_file (PEM files)")
    if parsed.tls_verify_client and not parsed.tls_ca_file:
        raise ConfigError(f"{where}: tls_verify_client needs tls_ca_file, the CAs a client's certificate chains to")
    if not parsed.tls_port_firewalled:
        raise ConfigError(f"{where}: tls_port needs tls_port_firewalled = true, once only the trunks' signalling "
                          "ranges reach it, with a cap on connections (docs/sip.md#tls-and-srtp gives the nftables "
                          "rule): PJSIP's TLS listener accepts anyone, and a few hundred bare connects abort the edge")
    if parsed.tls_port == parsed.sip_port:
        raise ConfigError(f"{where}: tls_port must differ from sip_port (5061 is TLS's usual port)")
    for name in ("tls_certificate_file", "tls_private_key_file", "tls_ca_file"):
        if (file := getattr(parsed, name)) and not os.access(file, os.R_OK):
            raise ConfigError(f"{where}: {name}: {file} cannot be read by the edge")
    mode = os.stat(parsed.tls_private_key_file).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{where}: tls_private_key_file: {parsed.tls_private_key_file} is open to other users "
                          f"(mode {stat.S_IMODE(mode):o}): run `chmod 600 {parsed.tls_private_key_file}` as the "
                          "edge's user")
    _check_key_pair(where, parsed.tls_certificate_file, parsed.tls_private_key_file)
    if parsed.tls_ca_file and (count := Path(parsed.tls_ca_file).read_bytes().count(_PEM_CERTIFICATE)) > MAX_TLS_CAS:
        raise ConfigError(f"{where}: tls_ca_file: {parsed.tls_ca_file} holds {count} CAs, more than {MAX_TLS_CAS}: "
                          "PJSIP names each to every TLS client, and with a system bundle's no handshake completes; "
                          "give only your trunks' CAs (the one root each provider names)")
    # The trunks' servers are checked against tls_ca_file only: PJSIP's listener names each CA of its list
    # to every client, and with the system's whole bundle (~140) no handshake ever completed.
    calling = [t.name for t in parsed.trunk if _tls_uri(t.termination_uri) or _tls_uri(t.registrar)]
    if calling and not parsed.tls_ca_file:
        raise ConfigError(f"{where}: trunk {calling[0]!r}: calls and registrations over TLS need tls_ca_file, the "
                          "CA (PEM) the trunk's certificate chains to (the one root its provider names, not the "
                          "system's bundle): the edge never calls out unchecked")
    return Tls(parsed.tls_port, parsed.tls_certificate_file, parsed.tls_private_key_file, parsed.tls_ca_file,
               parsed.tls_verify_client)


# PJSIP's listener sends the names of tls_ca_file's CAs to each client; measured on the wheel, 60 of
# Debian's bundle still let handshakes complete and 90 stalled every one (docs/sip.md#tls-and-srtp).
MAX_TLS_CAS = 32
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def _check_key_pair(where: str, certificate: str, private_key: str) -> None:
    """The certificate and its private key as PEM, matching and unencrypted (PJSIP is given no password),
    read with Python's OpenSSL now rather than by PJSIP's at the first handshake, which fails unseen."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certificate, private_key, password="")
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{where}: tls_certificate_file {certificate} and tls_private_key_file {private_key} are "
                          f"not a PEM certificate and its unencrypted private key ({exc.__class__.__name__}: "
                          f"{getattr(exc, 'reason', None) or exc})") from None


def _tls_uri(uri: str | None) -> bool:
    """A termination URI whose calls go over TLS: `sips:…` or `…;transport=tls`."""
    return uri is not None and (uri.lower().startswith("sips:") or ";transport=tls" in uri.lower())


def front_runs(workers: int, inbound_digest: bool) -> bool:
    """Whether an edge of `workers` runs its Kamailio front: for several workers, or for one when a trunk has an
    inbound digest credential (`inbound_digest`), which the front alone checks (PJSIP has no server-side digest)."""
    return workers > 1 or inbound_digest


def _worker_sip_port(parsed: EdgeFile, inbound_digest: bool) -> int:
    if not front_runs(parsed.workers, inbound_digest):
        return 0
    return parsed.worker_sip_port if parsed.worker_sip_port is not None else parsed.sip_port + 1


def _worker_control_port(parsed: EdgeFile, inbound_digest: bool) -> int:
    """The first worker's control port: none without the front or without the edge's own control API, which alone
    passes requests on to the workers' (sipedge/control_front.py)."""
    if not front_runs(parsed.workers, inbound_digest) or parsed.control_port is None:
        return 0
    return parsed.worker_control_port if parsed.worker_control_port is not None else parsed.control_port + 1


def check_workers(path: str, config: EdgeConfig) -> None:
    """What workers behind the front need (several, or one for an inbound digest credential): their own RTP ports
    and SIP ports clear of the edge's own, and nothing the front does not carry."""
    if not config.front:
        return
    if config.rtp_port_count // config.workers // 2 * 2 < WORKER_RTP_PORTS:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: rtp_port_count: {config.workers} workers need at least "
                          f"{config.workers * WORKER_RTP_PORTS} RTP ports ({WORKER_RTP_PORTS} each)")
    last = config.worker_sip_port + config.workers - 1
    if last > 65535 or config.worker_sip_port <= config.sip_port <= last:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: worker_sip_port: the workers' ports {config.worker_sip_port}-"
                          f"{last} must be valid ports apart from sip_port {config.sip_port}")
    _check_worker_control_ports(path, config)
    if (tls := next((t.name for t in config.trunks if _tls_uri(t.termination_uri)), None)) is not None:
        # A worker's calls leave through the front, which never dials out over TLS: it could not check the
        # callee's certificate as a client (docs/sip.md#tls-with-several-workers).
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: workers: trunk {tls!r} places calls over TLS (a sips: or "
                          f"transport=tls termination_uri), which needs {_no_front(config)}: the workers' front does "
                          "not call out over TLS")
    if any(t.registrar is not None for t in config.trunks):
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: workers: a trunk with a registrar needs {_no_front(config)} "
                          "(registering through the workers' front is not supported yet)")


def _check_worker_control_ports(path: str, config: EdgeConfig) -> None:
    """The workers' control ports clear of every other port the edge binds (its SIP, TLS, control and RTP ports;
    the workers' SIP ports are UDP, and may share numbers with these TCP ones)."""
    if not config.worker_control_port:
        return
    first, last = config.worker_control_port, config.worker_control_port + config.workers - 1
    taken = {"sip_port": range(config.sip_port, config.sip_port + 1),
             "control_port": range(config.control_port or 0, (config.control_port or 0) + 1),
             "the RTP range": range(config.rtp_port, config.rtp_port + config.rtp_port_count),
             **({"tls_port": range(config.tls.port, config.tls.port + 1)} if config.tls is not None else {})}
    clash = next((name for name, ports in taken.items() if ports.start <= last and first < ports.stop), None)
    if last > 65535 or clash is not None:
        why = "past port 65535" if clash is None else f"overlapping {clash}"
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: worker_control_port: the workers' control ports {first}-{last} "
                          f"(control_port + 1 unless set, one a worker) are {why}: set worker_control_port to a "
                          "free block (docs/sip.md#configuration)")


def _no_front(config: EdgeConfig) -> str:
    """What an edge whose front runs changes for it to run none: `workers` to 1, and no inbound digest credential."""
    digest = next((t.name for t in config.trunks if t.inbound_digest is not None), None)
    if digest is None:
        return "workers = 1"
    return (f"an edge without Kamailio's front (workers = 1, and no inbound digest credential: trunk {digest!r} has "
            "one, which the front checks)")


def _control_secret(parsed: EdgeFile, env: Mapping[str, str]) -> str | None:
    """The control key the dispatcher presents to this edge's control API (derived for it from SIP_EDGE_SECRET);
    needed too with a priced trunk, whose calls' starts the edge vouches for with its credential."""
    priced = next((t.name for t in parsed.trunk if t.usd_per_minute is not None), None)
    if parsed.control_port is None and priced is None:
        return None
    if not parsed.control_secret_env:
        needs = "control_port" if parsed.control_port is not None else f"trunk {priced!r}'s usd_per_minute"
        raise ConfigError(f"{needs} needs control_secret_env: the variable holding the control key the "
                          "dispatcher presents to this edge (docs/sip.md#edge-credentials)")
    secret = _secret(env, parsed.control_secret_env, "the control API's secret")
    if len(secret) < 32:
        raise ConfigError(f"the control API's secret ({parsed.control_secret_env}) must be at least 32 characters")
    return secret


def _edge_credential(parsed: EdgeFile, env: Mapping[str, str]) -> str | None:
    """The edge's own credential, derived from the dispatcher's SIP_EDGE_SECRET for this edge alone."""
    if not parsed.edge_credential_env:
        return None
    credential = _secret(env, parsed.edge_credential_env, "the edge's credential")
    if not credential.startswith(EDGE_CREDENTIAL_PREFIX):
        raise ConfigError(f"the edge's credential ({parsed.edge_credential_env}) is not one derived for an edge: "
                          f"it starts {EDGE_CREDENTIAL_PREFIX!r} (docs/sip.md#edge-credentials)")
    return credential


def _secret(env: Mapping[str, str], variable: str, what: str) -> str:
    value = env.get(variable, "")
    if not value:
        raise ConfigError(f"{what}: the environment variable {variable} is unset or empty")
    return value


def _trunk(trunk: TrunkFile, env: Mapping[str, str], inbound_passwords: bool = True,
           other_secrets: bool = True) -> Trunk:
    variables = {number: given if isinstance(given, str) else given.key for number, given in trunk.numbers.items()}
    keys = {number: _secret(env, variable, f"trunk {trunk.name!r}, number {number}")
            if variable and other_secrets else None
            for number, variable in variables.items()}
    releases = {number: given.release for number, given in trunk.numbers.items()
                if isinstance(given, NumberFile) and given.release is not None}
    if not trunk.numbers and trunk.termination_uri is None:
        raise ConfigError(f"trunk {trunk.name!r}: give it numbers (calls it brings in) or a termination_uri "
                          "(calls the edge places through it), or both")
    if trunk.numbers and not trunk.sources and trunk.inbound_digest_username is None:
        raise ConfigError(f"trunk {trunk.name!r}: numbers need sources, the addresses (CIDR) its INVITEs come from, "
                          "or an inbound digest credential its INVITEs answer from any address "
                          "(inbound_digest_username, docs/sip.md#inbound-digest)")
    password = None
    if trunk.registrar is not None and not (trunk.digest_username and trunk.digest_password_env):
        raise ConfigError(f"trunk {trunk.name!r}: a registrar needs digest_username and digest_password_env")
    if trunk.digest_username is not None or trunk.digest_password_env is not None:
        if not (trunk.digest_username and trunk.digest_password_env):
            raise ConfigError(f"trunk {trunk.name!r}: a digest credential needs both digest_username and "
                              "digest_password_env")
        password = (_secret(env, trunk.digest_password_env, f"trunk {trunk.name!r}'s digest password")
                    if other_secrets else None)
    return Trunk(trunk.name, tuple(ipaddress.ip_network(s, strict=False) for s in trunk.sources), keys,
                 releases, trunk.registrar, trunk.digest_username, password, trunk.termination_uri, trunk.cps,
                 trunk.ring_seconds, trunk.callers, trunk.destinations,
                 trunk.caller_ids if trunk.caller_ids is not None else tuple(trunk.numbers), trunk.srtp,
                 _price(trunk), registrar_retry_seconds=trunk.registrar_retry_seconds,
                 inbound_digest=_inbound_digest(trunk, env, inbound_passwords),
                 unanswered_invites=trunk.unanswered_invites)


def _inbound_digest(trunk: TrunkFile, env: Mapping[str, str], password: bool = True) -> InboundDigest | None:
    """The credential the trunk's requests must carry, its password's variable set now (unless not `password`: a
    worker's load) rather than found empty or short by Kamailio, which would then admit nobody or a cracker."""
    username, variable = trunk.inbound_digest_username, trunk.inbound_digest_password_env
    if username is None and variable is None:
        return None
    if username is None or variable is None:
        raise ConfigError(f"trunk {trunk.name!r}: an inbound digest credential needs both inbound_digest_username "
                          "and inbound_digest_password_env")
    if not trunk.numbers:
        raise ConfigError(f"trunk {trunk.name!r}: inbound_digest_username challenges the calls the trunk brings in: "
                          "give it numbers, or leave the inbound credential out")
    if password:
        what = f"trunk {trunk.name!r}'s inbound digest password"
        short = short_inbound_password(_secret(env, variable, what))
        if short is not None:
            raise ConfigError(f"{what} ({variable}) {short}")
    return InboundDigest(username, variable)


def _price(trunk: TrunkFile) -> TrunkPrice | None:
    price = trunk.usd_per_minute
    if price is None:
        return None
    if isinstance(price, PriceFile):
        return TrunkPrice(price.inbound, price.outbound, trunk.billing_increment_seconds)
    return TrunkPrice(float(price), float(price), trunk.billing_increment_seconds)

"""TURN relay settings (cloud sessions over SmallWebRTC without Daily): which relay, and its knobs.

`turn: none` (default) leaves the stack Daily-only. `managed` provisions coturn on a small VM with a
static address (stacks/aws/relay.py, stacks/gcp/relay.py); `external` points the dispatcher at a TURN
service you run elsewhere (`turnUrls`). Either way the shared secret (coturn `static-auth-secret`,
the TURN REST scheme's HMAC key) is the stack's own, kept in its state (stacks/config/made_secrets.py),
unless `turnSharedSecret` sets one (`external`: your service's); it reaches coturn and the
dispatcher only through Secrets Manager / Secret Manager (on k8s, the dispatcher's Secret; k8s
takes `external` only, stacks/config/k8s.py); clients and bots get short-lived
credentials derived from it (dispatcher/media/turn.py), never the secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from dispatcher.media.turn import DEFAULT_CREDENTIALS_PER_KEY, DEFAULT_TTL_SECONDS
from stacks.config import made_secrets
from stacks.config.reader import Reader

MODES = ("none", "managed", "external")
MIN_SECRET_CHARACTERS = 16  # dispatcher/media/turn.py refuses shorter secrets at start-up
# One TURN allocation per ICE component; a session's bot and client use a few each.
USER_QUOTA = 10
CREDENTIALS_KEY = "turnCredentialsPerKey"  # 0 (default): derived from turnTotalQuota
_URL = re.compile(r"^turns?:[A-Za-z0-9.\-\[\]:]+(\?transport=(udp|tcp))?$")
_PORTS = re.compile(r"^(\d{4,5})-(\d{4,5})$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class TurnSettings:
    mode: str  # managed | external
    shared_secret: pulumi.Output[str]
    external_urls: tuple[str, ...] = ()  # external only
    domain: str | None = None  # managed: the TLS name (turns:<domain>:443) and the realm
    tls_certificate: pulumi.Output[str] | None = None  # PEM, managed only, with the key
    tls_private_key: pulumi.Output[str] | None = None
    instance_type: str = "t3.small"  # AWS
    machine_type: str = "e2-small"  # GCP
    vm_size: str = "Standard_B2s"  # Azure
    ssh_public_key: str | None = None  # Azure: a Linux VM must have a credential; no rule admits SSH
    relay_ports: tuple[int, int] = (49152, 65535)
    total_quota: int = 1000
    credentials_per_key: int = DEFAULT_CREDENTIALS_PER_KEY  # the dispatcher's TURN_CREDENTIALS_PER_KEY

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None


def load(cfg: Reader, rotation: made_secrets.Rotation) -> TurnSettings | None:
    mode = cfg.string("turn", choices=MODES)
    if mode == "none":
        return None
    secret = cfg.secret("turnSharedSecret", required=mode == "external", check=lambda value: _check_secret(cfg, value))
    if secret is None:  # a managed relay's: the stack makes it
        secret = made_secrets.turn_secret(rotation)
    if mode == "external":
        urls = tuple(u.strip() for u in (cfg.optional("turnUrls") or "").split(",") if u.strip())
        if not urls or not all(_URL.match(u) for u in urls):
            raise cfg.fail("turnUrls", "must list the external TURN server's turn:/turns: URLs, comma-separated "
                                       f"(got {cfg.optional('turnUrls')!r})")
        # The service's quotas are not known here: the operator's value, else the dispatcher's default.
        return TurnSettings(mode=mode, shared_secret=secret, external_urls=urls,
                            credentials_per_key=cfg.integer(CREDENTIALS_KEY, minimum=0) or DEFAULT_CREDENTIALS_PER_KEY)
    certificate = cfg.secret("turnTlsCertificate", required=False)
    key = cfg.secret("turnTlsPrivateKey", required=False)
    if (certificate is None) != (key is None):
        raise cfg.fail("turnTlsPrivateKey" if key is None else "turnTlsCertificate",
                       "is required with the other TLS value (certificate and private key, both --secret)")
    domain = cfg.optional("turnDomain")
    if domain is not None and not _DOMAIN.match(domain):
        raise cfg.fail("turnDomain", f"must be a lowercase DNS name (got {domain!r})")
    if certificate is not None and domain is None:
        raise cfg.fail("turnDomain", "is required with a TLS certificate (clients connect to turns:<domain>:443)")
    ports = _PORTS.match(cfg.string("turnRelayPorts"))
    low, high = (int(ports[1]), int(ports[2])) if ports else (0, 0)
    if not ports or not 1024 <= low < high <= 65535 or high - low < 100:
        raise cfg.fail("turnRelayPorts", "must be a range like 49152-65535 above 1023 with at least 100 ports")
    total_quota = cfg.integer("turnTotalQuota", minimum=1, maximum=100_000)
    return TurnSettings(
        mode=mode, shared_secret=secret, domain=domain, tls_certificate=certificate, tls_private_key=key,
        instance_type=cfg.string("turnInstanceType", pattern=re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")),
        machine_type=cfg.string("turnMachineType", pattern=re.compile(r"^[a-z0-9]+-[a-z0-9-]+$")),
        vm_size=cfg.string("turnVmSize", pattern=re.compile(r"^Standard_[A-Za-z0-9_]+$")),
        ssh_public_key=_ssh_key(cfg),
        relay_ports=(low, high), total_quota=total_quota,
        credentials_per_key=_credentials_per_key(cfg, total_quota),
    )


def _ssh_key(cfg: Reader) -> str | None:
    key = cfg.optional("turnSshPublicKey")
    if key is not None and not re.fullmatch(r"ssh-(rsa|ed25519) [A-Za-z0-9+/=]{60,}( [^\n]*)?", key):
        raise cfg.fail("turnSshPublicKey", "must be an OpenSSH public key line (ssh-ed25519 AAAA… or ssh-rsa AAAA…)")
    return key


def browser_urls(turn: TurnSettings) -> int:
    """How many TURN URLs a client gets (TURN_URLS): the external service's, or the managed relay's
    UDP and TCP on 3478 and, with TLS, turns: on 443 (stacks/shared/turn_server.py urls)."""
    if turn.mode != "managed":
        return len(turn.external_urls)
    return 3 if turn.tls and turn.domain else 2


def allocations_per_session(turn: TurnSettings) -> int:
    """Relay allocations one WebRTC session holds: with ICE_TRANSPORT_POLICY=relay a browser gathers
    one on every TURN URL it is given; the bot (aiortc, which takes a single TURN server) one."""
    return browser_urls(turn) + 1


def starts_per_minute_per_key(turn: TurnSettings) -> float:
    """WebRTC starts one API key may make a minute: each takes a TURN credential that counts until it
    expires (the dispatcher's TURN_CREDENTIAL_TTL_SECONDS, which the stacks leave at its default),
    whether its session ended or not (dispatcher/media/turn_quota.py)."""
    return turn.credentials_per_key * 60 / DEFAULT_TTL_SECONDS


def warn_if_short(turn: TurnSettings | None, max_sessions: int) -> None:
    """A managed relay whose quota cannot hold every session relayed at once is said at preview, not
    met in production, with what one API key may start."""
    if turn is None or turn.mode != "managed":
        return
    each = allocations_per_session(turn)
    if each * max_sessions <= turn.total_quota:
        return
    pulumi.log.warn(
        f"TURN: turnTotalQuota={turn.total_quota} allocations relay at most {turn.total_quota // each} WebRTC "
        f"sessions at once ({each} allocations each: one per TURN URL a browser gets, {browser_urls(turn)}, "
        f"and the bot's), below maxConcurrentSessions={max_sessions}; and one API key may hold "
        f"{turn.credentials_per_key} TURN credentials (turnCredentialsPerKey), each counted for its "
        f"{DEFAULT_TTL_SECONDS} s life, so {starts_per_minute_per_key(turn):g} WebRTC starts a minute per key "
        f"(Daily starts are not counted). If most sessions relay, set turnTotalQuota to at least "
        f"{each * max_sessions} with a relay machine that carries them (turnMachineType / turnInstanceType), "
        f"and turnCredentialsPerKey to {DEFAULT_TTL_SECONDS // 60} x the WebRTC starts a minute one key makes "
        f"(each credential may take {USER_QUOTA} allocations, so that times {USER_QUOTA} must stay below "
        "turnTotalQuota) (docs/pulumi.md, TURN relay)")


def derived_credentials_per_key(total_quota: int) -> int:
    """Credentials one API key may hold so that it takes at most half the relay (each takes up to
    USER_QUOTA allocations), and never more than the dispatcher's default."""
    return min(DEFAULT_CREDENTIALS_PER_KEY, max(1, total_quota // (2 * USER_QUOTA)))


def _credentials_per_key(cfg: Reader, total_quota: int) -> int:
    explicit = cfg.integer(CREDENTIALS_KEY, minimum=0)
    if not explicit:
        return derived_credentials_per_key(total_quota)
    # An ending session does not free its credential's allocations (the relay cannot revoke one), so
    # a key whose credentials may take every allocation could keep every other key off the relay.
    if explicit * USER_QUOTA >= total_quota:
        most = (total_quota - 1) // USER_QUOTA
        advice = f"use at most {most}" if most else f"raise turnTotalQuota above {USER_QUOTA}"
        raise cfg.fail(CREDENTIALS_KEY, f"lets one API key hold the whole relay: {explicit} credentials × "
                                        f"user-quota {USER_QUOTA} ≥ turnTotalQuota {total_quota}; {advice}, "
                                        f"or unset it (half the relay)")
    return explicit


def _check_secret(cfg: Reader, value: str) -> None:
    # Checked when the value is known (it is an Output); a short key makes forged credentials cheap.
    if len(value) < MIN_SECRET_CHARACTERS:
        raise cfg.fail("turnSharedSecret", f"must be at least {MIN_SECRET_CHARACTERS} characters")


# Secret store entries (environment-style names) of the relay, in the order the boot script reads them.
TURN_SECRET_ORDER = ("TURN_SHARED_SECRET", "TURN_TLS_CERTIFICATE", "TURN_TLS_PRIVATE_KEY")


def turn_secrets(settings: object) -> dict[str, pulumi.Output[str]]:
    """What goes into the stack's secret store for TURN (nothing without a relay)."""
    turn: TurnSettings | None = getattr(settings, "turn", None)
    if turn is None:
        return {}
    found = {"TURN_SHARED_SECRET": turn.shared_secret}
    if turn.tls_certificate is not None and turn.tls_private_key is not None:
        found |= {"TURN_TLS_CERTIFICATE": turn.tls_certificate, "TURN_TLS_PRIVATE_KEY": turn.tls_private_key}
    return found


def relay_secret_names(settings: object) -> list[str]:
    """A managed relay's secrets, in the order its boot script reads them (TURN_SECRET_ORDER)."""
    return sorted(turn_secrets(settings), key=TURN_SECRET_ORDER.index)

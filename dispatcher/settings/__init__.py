"""The dispatcher's configuration: environment variables only, validated once at start-up.

Every variable is documented in docs/configuration.md. Provider-specific variables (ECS_*, GCE_*, FLY_*,
DAILY_*) are read by the provider's own module; this one holds what every mode shares.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from voicefleet_settings.model import ENUM, LIST
from voicefleet_settings.read import SettingsError as SettingsError  # defined beside its reader, raised by all
from voicefleet_settings.read import entry, setting_choice, setting_float, setting_int, setting_list, setting_text

MACHINE_KINDS = entry("MACHINES", ENUM).choices  # "local", then the providers
TRANSPORT_KINDS = entry("TRANSPORTS", LIST).choices


# A client key's name (`name:key` in DISPATCHER_API_KEYS): its sessions, limits and default release.
KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
KEY_NAME_RULE = "1-32 lowercase letters, digits or '-', not starting with '-'"


def hash_api_key(key: str) -> bytes:
    """Keys are kept only as SHA-256 digests: a memory dump or a log line never shows one."""
    return hashlib.sha256(key.encode()).digest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentialed_url(name: str, url: str, credential: str) -> str:
    """`url` of the setting `name`, to which every request carries `credential`: https, or plain http only
    to a loopback host (a test's fake on this machine), and no user or password in it (a credential in a
    setting is shown wherever the setting is: logs, `voicefleet config`, a pod's spec)."""
    parsed = urlsplit(url)
    if "@" in parsed.netloc:
        shown = parsed._replace(netloc=parsed.netloc.rpartition("@")[2], query="", fragment="").geturl()
        raise SettingsError(f"{name}={shown[:80]!r} holds a user or password before its host (user:password@): "
                            f"a credential never goes in a setting's URL; remove it (each request carries "
                            f"{credential})")
    if parsed.scheme == "https" and parsed.hostname or parsed.scheme == "http" and is_loopback(parsed.hostname or ""):
        return url
    raise SettingsError(f"{name}={url[:80]!r} must be https:// (plain http:// only to a loopback host such "
                        f"as 127.0.0.1): each request carries {credential}")


def require(env: Mapping[str, str], names: tuple[str, ...], machines: str) -> dict[str, str]:
    """The values of `names`; if any is unset, one error naming every missing one at once."""
    missing = [name for name in names if not env.get(name, "").strip()]
    if missing:
        raise SettingsError(f"MACHINES={machines} needs {', '.join(missing)} (not set)")
    return {name: env[name].strip() for name in names}


def api_endpoint(env: Mapping[str, str], url_variable: str, default_url: str, auth_variable: str) -> tuple[str, str]:
    """A provider's API URL and how it signs in (its catalogue choices; `none` only for a local fake)."""
    api_url = (env.get(url_variable, "").strip() or default_url).rstrip("/")
    auth = setting_choice(env, auth_variable)
    if auth == "none" and api_url == default_url:
        raise SettingsError(f"{auth_variable}=none is only for a local fake at {url_variable}")
    return api_url, auth


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # BOT_CHANNEL_PORT: a second port serving only the bots' routes (/bots/…), which PORT then refuses;
    # None serves them on PORT (dispatcher/api/channel_port.py).
    bot_channel_port: int | None = None
    # BOT_CHANNEL_TLS_CERT_FILE and BOT_CHANNEL_TLS_KEY_FILE: the channel port serves TLS (wss://) with
    # them; None: plain (dispatcher/serving/channel_tls.py).
    bot_channel_tls: tuple[str, str] | None = None
    machines: str = "local"
    api_key_hashes: frozenset[bytes] = frozenset()
    # The named keys' digests and names (`name:key`): two keys of one name are one caller.
    api_key_names: tuple[tuple[bytes, str], ...] = ()
    # DISPATCHER_ADMIN_KEYS: the admin surface's own keys (releases' traffic); never a client's.
    admin_key_hashes: frozenset[bytes] = frozenset()
    max_concurrent_sessions: int = 10
    # Each caller's share when several share the deployment (dispatcher/sessions/key_share.py).
    key_session_share: float = 0.5  # of MAX_CONCURRENT_SESSIONS
    key_warm_share: float = 0.5  # of RESERVE_MAX_IDLE, claimed a minute
    max_session_seconds: int = 1800
    start_wait_seconds: float = 30.0  # deadline of `POST /start?wait=started` and of offer proxying
    max_body_bytes: int = 4096  # the client's `body` object, serialized
    max_request_bytes: int = 65536  # a whole request body (SDP offers are a few KB)
    max_header_bytes: int = 8192  # all request headers together
    start_rate_per_key: float = 5.0  # POST /start per second per API key (token bucket refill)
    start_burst_per_key: int = 20
    read_rate_per_key: float = 20.0  # GET/DELETE /sessions/{id} and offers per second per API key
    read_burst_per_key: int = 100
    reaper_interval_seconds: float = 60.0  # 0 turns the reaper off
    reaper_grace_seconds: float = 120.0
    cors_allow_origins: tuple[str, ...] = ()  # browsers on other origins get no CORS headers at all
    keep_alive_seconds: int = 5  # behind a load balancer: above its idle timeout (ALB: 60 → 65)
    header_timeout_seconds: float = 10.0  # a connection's time to send one whole request
    write_timeout_seconds: float = 30.0  # a client's time to take some of a response it stopped reading
    # Connections open at once (API, bot channels, media sockets; at most half the descriptor limit):
    # above BOT_CHANNEL_MAX_CONNECTIONS plus SESSION_WAITS, so neither starves the other.
    max_connections: int = 4000
    # The per-deployment bot credential of the control channel (botchannel/contract.py). Local
    # mode generates one per run when unset; a secret, so never in a repr or a log line.
    bot_channel_token: str | None = field(default=None, repr=False)
    # The transports sessions may use, the default first: `daily` (a Daily room) or `webrtc`
    # (SmallWebRTC; in the cloud through a TURN relay, signalling over the bot channel).
    # Empty: the mode's own (local: webrtc; cloud: daily).
    transports: tuple[str, ...] = ()
    bot_channel_max_connections: int = 1000  # open bot channels at once (each live bot holds one)
    bot_channel_max_identity_only: int = 32  # credential-less channel sockets whose hello is being checked
    bot_channel_identity_only_per_address: int = 5  # …and how many one address may open a minute
    # Connections waiting on a session (its event stream, a long-poll): at most this many per
    # replica and per API key, each for at most `session_wait_seconds`.
    session_waits: int = 1000
    session_waits_per_key: int = 20
    session_wait_seconds: float = 300.0
    session_poll_seconds: float = 1.0  # how often a watched session past `starting` is read from the provider
    # This region's name with several regions; "" for a dispatcher that is one region. Not read here:
    # dispatcher/wiring.py sets it from Regions.from_env, which reads REGION with REGIONS and
    # REGION_SECRET, so the two never disagree.
    region: str = ""

    def __post_init__(self) -> None:
        if not self.transports:
            object.__setattr__(self, "transports", ("webrtc",) if self.machines == "local" else ("daily",))

    @property
    def cloud(self) -> bool:
        return self.machines != "local"

    @property
    def api_callers(self) -> int:
        """How many callers the client keys are: each name once, each unnamed key once."""
        named = dict(self.api_key_names)
        return len({named.get(h, h.hex()) for h in self.api_key_hashes})

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        host = setting_text(env, "HOST")
        machines = setting_choice(env, "MACHINES")
        if "DISPATCHER_PEERS" in env:  # removed: a leftover would leave replicas unable to reach each other's bots
            raise SettingsError("DISPATCHER_PEERS is no longer read: replicas find each other's bots through their "
                                "shared store; set REDIS_URL instead (docs/replicas.md)")
        entries = _api_keys(env)
        keys = [key for _, key in entries]
        admin_keys = {hash_api_key(k.strip()) for k in env.get("DISPATCHER_ADMIN_KEYS", "").split(",") if k.strip()}
        if admin_keys & {hash_api_key(k) for k in keys}:
            raise SettingsError("DISPATCHER_ADMIN_KEYS shares a key with DISPATCHER_API_KEYS: a client's key must "
                                "never change releases; give the admin surface keys of its own "
                                "(e.g. `openssl rand -hex 32`)")
        if not keys:
            # Without keys anyone who can reach the port could start bots: allow that only for
            # a developer's own machine.
            if machines != "local":
                raise SettingsError(f"DISPATCHER_API_KEYS must be set when MACHINES={machines}")
            if not is_loopback(host):
                raise SettingsError(
                    f"DISPATCHER_API_KEYS must be set to listen on HOST={host} (not loopback)"
                )
            if env.get("REDIS_URL", "").strip():
                # Keyless, each process draws its own random owner key: replicas sharing a store
                # would give one Idempotency-Key two sessions and could not read each other's.
                raise SettingsError("DISPATCHER_API_KEYS must be set with REDIS_URL: without keys each replica "
                                    "owns its sessions alone (docs/configuration.md)")
        named = [(hash_api_key(key), name) for name, key in entries if name is not None]
        if named and (machines != "local" or env.get("REDIS_URL", "").strip()) and not (
                env.get("BOT_CHANNEL_TOKEN", "").strip() or env.get("REGION_SECRET", "").strip()):
            # A name's sessions are bound to it with a deployment secret every replica holds.
            raise SettingsError("DISPATCHER_API_KEYS has named keys (name:key): set BOT_CHANNEL_TOKEN (or "
                                "REGION_SECRET with regions), which binds a name's sessions to it on every replica")
        port = setting_int(env, "PORT")
        return cls(
            host=host,
            port=port,
            bot_channel_port=_bot_channel_port(env, port),
            bot_channel_tls=_bot_channel_tls(env),
            machines=machines,
            api_key_hashes=frozenset(hash_api_key(k) for k in keys),
            api_key_names=tuple(named),
            admin_key_hashes=frozenset(admin_keys),
            max_concurrent_sessions=setting_int(env, "MAX_CONCURRENT_SESSIONS"),
            key_session_share=setting_float(env, "KEY_SESSION_SHARE"),
            key_warm_share=setting_float(env, "KEY_WARM_SHARE"),
            max_session_seconds=setting_int(env, "MAX_SESSION_SECONDS"),
            start_wait_seconds=setting_float(env, "START_WAIT_SECONDS"),
            start_rate_per_key=setting_float(env, "START_RATE_PER_KEY"),
            start_burst_per_key=setting_int(env, "START_BURST_PER_KEY"),
            read_rate_per_key=setting_float(env, "READ_RATE_PER_KEY"),
            read_burst_per_key=setting_int(env, "READ_BURST_PER_KEY"),
            reaper_interval_seconds=setting_float(env, "REAPER_INTERVAL_SECONDS"),
            reaper_grace_seconds=setting_float(env, "REAPER_GRACE_SECONDS"),
            cors_allow_origins=_origins(setting_list(env, "CORS_ALLOW_ORIGINS")),
            keep_alive_seconds=setting_int(env, "KEEP_ALIVE_SECONDS"),
            header_timeout_seconds=setting_float(env, "HEADER_TIMEOUT_SECONDS"),
            write_timeout_seconds=setting_float(env, "WRITE_TIMEOUT_SECONDS"),
            max_connections=setting_int(env, "MAX_CONNECTIONS"),
            bot_channel_token=_bot_channel_token(env),
            transports=allowed_transports(env, machines),
            bot_channel_max_connections=setting_int(env, "BOT_CHANNEL_MAX_CONNECTIONS"),
            bot_channel_max_identity_only=setting_int(env, "BOT_CHANNEL_MAX_IDENTITY_ONLY"),
            bot_channel_identity_only_per_address=setting_int(env, "BOT_CHANNEL_IDENTITY_ONLY_PER_ADDRESS"),
            session_waits=setting_int(env, "SESSION_WAITS"),
            session_waits_per_key=setting_int(env, "SESSION_WAITS_PER_KEY"),
            session_wait_seconds=setting_float(env, "SESSION_WAIT_SECONDS"),
            session_poll_seconds=setting_float(env, "SESSION_POLL_SECONDS"),
        )


MIN_BOT_CHANNEL_TOKEN_CHARS = 32


def _api_keys(env: Mapping[str, str]) -> list[tuple[str | None, str]]:
    """`DISPATCHER_API_KEYS`: comma-separated `key` or `name:key` (split at the first ':', so a key
    may hold ':' after a name; `:key` keeps a key holding ':' unnamed). A mistake names the
    entry's position, never its text: the text is a secret."""
    raw = [part.strip() for part in env.get("DISPATCHER_API_KEYS", "").split(",") if part.strip()]
    entries: list[tuple[str | None, str]] = []
    for n, part in enumerate(raw, 1):
        name, colon, key = part.partition(":")
        if not colon:
            name, key = "", part
        where = f"DISPATCHER_API_KEYS: entry {n} of {len(raw)}"
        if name and not KEY_NAME.fullmatch(name):
            raise SettingsError(f"{where} has a name before ':' that is not {KEY_NAME_RULE}; write NAME:KEY, "
                                "or :KEY for an unnamed key that holds ':'")
        if not key.strip():
            raise SettingsError(f"{where} has a name and no key after ':'; write NAME:KEY")
        # A space inside a key is sent and read whole (`Bearer a b`). A non-ASCII character reaches
        # the dispatcher as the client's bytes read as Latin-1, never as the UTF-8 key set here, and
        # a control is a pasting mistake (keys on lines of their own): refused, never shown.
        if not all(" " <= c <= "~" for c in key):
            raise SettingsError(f"DISPATCHER_API_KEYS: key {n} of {len(raw)} has a control or a "
                                "non-ASCII character, which a client's `Authorization: Bearer` never matches; "
                                "use printable ASCII keys separated by commas (e.g. `openssl rand -hex 32`)")
        if any(key.strip() == known and (name or None) != other for other, known in entries):
            raise SettingsError(f"{where} repeats an earlier entry's key under another name: give each name its "
                                "own keys")
        entries.append((name or None, key.strip()))
    return entries


def _bot_channel_port(env: Mapping[str, str], port: int) -> int | None:
    if not env.get("BOT_CHANNEL_PORT", "").strip():
        return None
    channel_port = setting_int(env, "BOT_CHANNEL_PORT", default=0)
    if channel_port == port:
        raise SettingsError(f"BOT_CHANNEL_PORT={channel_port} is PORT too: give the bot channel a port of its own "
                            "(e.g. 8081), or unset BOT_CHANNEL_PORT to serve the channel on PORT")
    return channel_port


def _bot_channel_tls(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The channel port's certificate chain and key files, both or neither, only with BOT_CHANNEL_PORT (the
    public PORT sits behind a proxy that terminates its own TLS)."""
    cert, key = (env.get(name, "").strip() for name in ("BOT_CHANNEL_TLS_CERT_FILE", "BOT_CHANNEL_TLS_KEY_FILE"))
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "BOT_CHANNEL_TLS_KEY_FILE" if cert else "BOT_CHANNEL_TLS_CERT_FILE"
        raise SettingsError(f"{missing} is unset: the channel's TLS needs both BOT_CHANNEL_TLS_CERT_FILE (the "
                            "certificate chain) and BOT_CHANNEL_TLS_KEY_FILE (its key), or neither for a plain channel")
    if not env.get("BOT_CHANNEL_PORT", "").strip():
        raise SettingsError("BOT_CHANNEL_TLS_CERT_FILE is set without BOT_CHANNEL_PORT: TLS is served on the "
                            "channel's own port only; set BOT_CHANNEL_PORT (e.g. 8081)")
    return cert, key


def allowed_transports(env: Mapping[str, str], machines: str) -> tuple[str, ...]:
    """`TRANSPORTS` (allowed) and `DEFAULT_TRANSPORT` → the allowed ones, the default first, with what
    each needs of the rest of the settings."""
    allowed = listed_transports(env, machines)
    if machines == "local" and "daily" in allowed and not env.get("DAILY_API_KEY", "").strip():
        # Local Daily sessions (and Daily dial-in) need rooms, which the dispatcher makes with its key.
        raise SettingsError("TRANSPORTS includes daily: a local dispatcher makes each session's Daily room with "
                            "DAILY_API_KEY; set it, or keep TRANSPORTS=webrtc")
    if machines != "local" and "webrtc" in allowed and not env.get("BOT_CHANNEL_TOKEN", "").strip():
        # A cloud bot listens on nothing: its SmallWebRTC signalling can only come over the channel.
        raise SettingsError("TRANSPORTS includes webrtc: set BOT_CHANNEL_TOKEN (cloud bots take signalling over it)")
    return allowed


def listed_transports(env: Mapping[str, str], machines: str) -> tuple[str, ...]:
    """`TRANSPORTS` and `DEFAULT_TRANSPORT` as written → the transports, the default first: their names
    checked, not what they need (a stack reads this from the plain settings, the token kept apart)."""
    listed = setting_list(env, "TRANSPORTS") or (("webrtc",) if machines == "local" else ("daily",))
    default = setting_choice(env, "DEFAULT_TRANSPORT") or listed[0]
    if default not in listed:
        raise SettingsError(f"DEFAULT_TRANSPORT={default!r} is not in TRANSPORTS ({', '.join(listed)})")
    return (default, *(t for t in listed if t != default))


def _bot_channel_token(env: Mapping[str, str]) -> str | None:
    token = env.get("BOT_CHANNEL_TOKEN", "").strip()
    if not token:
        return None
    if len(token) < MIN_BOT_CHANNEL_TOKEN_CHARS:
        # The value itself is never echoed: only its length.
        raise SettingsError(
            f"BOT_CHANNEL_TOKEN must be at least {MIN_BOT_CHANNEL_TOKEN_CHARS} characters (got {len(token)}); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def _origins(listed: tuple[str, ...]) -> tuple[str, ...]:
    origins = tuple(o.rstrip("/") for o in listed)
    for origin in origins:
        if origin == "*" or not origin.startswith(("https://", "http://")):
            raise SettingsError(
                f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin like https://app.example.com (no wildcards)"
            )
    return origins

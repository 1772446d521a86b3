"""The store's settings (REDIS_URL and the rest), read without importing redis-py's client: the
configuration check (dispatcher/factory.py `configuration_problems`, `voicefleet config check`) reads them
and connects to nothing. The client (dispatcher/store/client.py) connects with them."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_choice, setting_float, setting_int, setting_text

# One hash tag for every key: a cluster-mode store (ElastiCache Serverless, Memorystore for Valkey)
# keeps them in one slot, so the multi-key scripts run there unchanged.
DEFAULT_PREFIX = "{voicefleet}:"
# The shortest message secret (REDIS_MESSAGE_SECRET) the seal takes: here, not in message_seal.py, whose
# AES-GCM and metrics the settings' check has no use for.
MIN_SECRET_CHARACTERS = 32


@dataclass(frozen=True)
class StoreSettings:
    url: str = field(repr=False)  # may carry a password
    replica_id: str = ""
    timeout_seconds: float = 0.5
    lease_seconds: float = 15.0  # a replica's and a session owner's record outlive a silent replica this long
    max_connections: int = 64
    prefix: str = DEFAULT_PREFIX
    password: str | None = field(default=None, repr=False)  # REDIS_PASSWORD, from the secret store
    ca_certificate: str | None = None  # REDIS_CA_CERT: the server's CA (PEM), e.g. Memorystore's own
    auth: str = "password"  # REDIS_AUTH: "password" (in the URL or REDIS_PASSWORD) or "gcp-iam"
    # REDIS_MESSAGE_SECRET: signs what replicas send each other on the store (dispatcher/store/message_seal.py)
    message_secret: str = field(default="", repr=False)
    # REDIS_ACCEPTED_MESSAGE_SECRET: during a change of that secret, a second one opened, never sealed
    accepted_message_secret: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings | None:
        """None without `REDIS_URL`: one process, no store (the default, and local mode's)."""
        url = setting_text(env, "REDIS_URL")
        if not url:
            return None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("REDIS_URL must start with redis://, rediss:// (TLS) or unix://")
        replica_id = setting_text(env, "REPLICA_ID") or f"r-{secrets.token_hex(6)}"
        if not replica_id.replace("-", "").replace("_", "").isalnum() or len(replica_id) > 64:
            raise SettingsError("REPLICA_ID: at most 64 letters, digits, '-' or '_'")
        prefix = setting_text(env, "REDIS_KEY_PREFIX")
        auth = setting_choice(env, "REDIS_AUTH")
        message_secret = setting_text(env, "REDIS_MESSAGE_SECRET")
        if len(message_secret) < MIN_SECRET_CHARACTERS:
            # Without it a replica would act on whatever anyone who may PUBLISH on the store sends.
            raise SettingsError(f"REDIS_MESSAGE_SECRET must be set with REDIS_URL (at least {MIN_SECRET_CHARACTERS} "
                                "characters, the same at every replica): replicas sign what they send each other")
        accepted = setting_text(env, "REDIS_ACCEPTED_MESSAGE_SECRET")
        if accepted and (len(accepted) < MIN_SECRET_CHARACTERS or accepted == message_secret):
            raise SettingsError(f"REDIS_ACCEPTED_MESSAGE_SECRET must be at least {MIN_SECRET_CHARACTERS} characters "
                                "and differ from REDIS_MESSAGE_SECRET: the other secret of a change, opened only")
        ca = setting_text(env, "REDIS_CA_CERT") or None
        if ca is not None and "BEGIN CERTIFICATE" not in ca:
            raise SettingsError("REDIS_CA_CERT must hold PEM certificates")
        password = setting_text(env, "REDIS_PASSWORD") or None
        if auth == "password" and password is None and not _url_password(url):
            # On any host, loopback included: local bots are processes of this host, so a store on
            # loopback is reachable from every bot, and its password is all that keeps them out.
            raise SettingsError("REDIS_URL carries no password and REDIS_PASSWORD is not set: the store would "
                                "take whoever reaches it (a local bot reaches a loopback store); give it a password")
        return cls(
            url=url,
            replica_id=replica_id,
            timeout_seconds=setting_float(env, "REDIS_TIMEOUT_SECONDS"),
            lease_seconds=setting_float(env, "REDIS_LEASE_SECONDS"),
            max_connections=setting_int(env, "REDIS_MAX_CONNECTIONS"),
            prefix=prefix,
            password=password,
            ca_certificate=ca,
            auth=auth,
            message_secret=message_secret,
            accepted_message_secret=accepted,
        )


def _url_password(url: str) -> bool:
    """Whether the URL itself carries a password (`redis://user:pw@…`, `unix://…?password=…`)."""
    from redis.connection import parse_url  # redis-py only where a URL is read: the check imports no client

    try:
        return bool(parse_url(url).get("password"))  # type: ignore[no-untyped-call]
    except ValueError:
        return False  # redis-py refuses it again, with its reason, at the first connection

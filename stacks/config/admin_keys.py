"""`dispatcherAdminKeys`: the admin surface's keys (the dispatcher's `DISPATCHER_ADMIN_KEYS`).

Required in every regional stack, never generated: without it a deployed dispatcher answers
`/releases` with 403 `admin_not_configured`, so nobody could canary, promote or roll back. The
operator makes the key (`openssl rand -hex 32`) and reads it back with `pulumi config get`, as
with `dispatcherApiKeys`; a generated key would need a provider this program does not use. It
reaches the dispatcher only by reference to the cloud's secret store, beside the client keys, and
never a bot. The dispatcher refuses to start with an admin key that is also a client key; the
preview refuses it first, naming the key, so no deploy rolls out a dispatcher that cannot start.
"""

from __future__ import annotations

import pulumi

from stacks.config.reader import Reader

KEY = "dispatcherAdminKeys"
CLIENT_KEYS = "dispatcherApiKeys"
VARIABLE = "DISPATCHER_ADMIN_KEYS"
SET_COMMAND = f'pulumi config set --secret {KEY} "$(openssl rand -hex 32)"'


def keys(text: str) -> set[str]:
    """The keys of a comma-separated list, as the dispatcher reads them (dispatcher/settings.py)."""
    return {key.strip() for key in text.split(",") if key.strip()}


def load(cfg: Reader, client_keys: pulumi.Output[str]) -> pulumi.Output[str]:
    """The secret, refused unset, in plain text, empty, or sharing a key with `client_keys`."""
    if cfg.raw(KEY) is None:
        raise cfg.fail(KEY, "is required: the dispatcher's admin surface (/releases: canary, promote, roll back) "
                            f"refuses every call without it. Set one with {SET_COMMAND} (it stays encrypted in the "
                            "stack file; `pulumi config get dispatcherAdminKeys` shows it for VOICEFLEET_ADMIN_KEY)")
    admin = cfg.secret(KEY, required=True)
    assert admin is not None
    pulumi.Output.all(admin, client_keys).apply(lambda found: check(cfg, str(found[0]), str(found[1])))
    return admin


def check(cfg: Reader, admin: str, clients: str) -> None:
    """Checked once both values are known; the values themselves never reach a message."""
    if not keys(admin):
        raise cfg.fail(KEY, f"holds no key (only commas and spaces): set one with {SET_COMMAND}")
    if keys(admin) & keys(clients):
        raise cfg.fail(KEY, f"shares a key with {cfg.key(CLIENT_KEYS)}: a client's key must never change "
                            f"releases, and the dispatcher refuses to start so; give the admin surface keys of its "
                            f"own: {SET_COMMAND}")

"""The Plivo account the dispatcher calls Plivo's API as (docs/phone.md, "Handing a call to a person"): its
Auth ID, plain (an identifier, whose credential is the secret plivoAuthToken). Without it a deployed
dispatcher cannot transfer a Plivo call, whatever token the stack sets. Checked as the dispatcher
checks it at start-up (dispatcher/phone/settings.py), so a value it would refuse fails the preview."""

from __future__ import annotations

from collections.abc import Collection

from dispatcher.phone.plivo_ids import AUTH_ID, AUTH_ID_RULE
from stacks.config.reader import Reader

AUTH_ID_KEY = "plivoAuthId"
AUTH_ID_VARIABLE = "PLIVO_AUTH_ID"
KEYS = {AUTH_ID_KEY: AUTH_ID_VARIABLE}


def load(cfg: Reader, secrets_set: Collection[str]) -> dict[str, str]:
    """{PLIVO_AUTH_ID: its value} when the key is set, else {}; `secrets_set`: the phone secrets' variables
    the stack sets, which must hold the account's token."""
    if (auth_id := cfg.plain(AUTH_ID_KEY)) is None:
        return {}
    if not AUTH_ID.fullmatch(auth_id):
        raise cfg.fail(AUTH_ID_KEY, f"must be {AUTH_ID_RULE} (got {auth_id[:40]!r})")
    if "PLIVO_AUTH_TOKEN" not in secrets_set:
        raise cfg.fail(AUTH_ID_KEY, "needs plivoAuthToken, the account's credential, to call Plivo's API: "
                                    "pulumi config set --secret plivoAuthToken …")
    return {AUTH_ID_VARIABLE: auth_id}

"""Calls the dispatcher places through Twilio's Calls API (docs/phone.md, "Calling out"): the account (its
SID, plain: an identifier, whose credential is the secret twilioAuthToken), its pace and how long a call
may wait for it, and the public address Twilio's status and answering-machine callbacks come back to.
Who may call out, where and as whom are the policy's keys (stacks/config/call_callers.py). Each key left
unset leaves the dispatcher's own default (no account: no calls placed through Twilio; one call a second,
five seconds' wait; no public URL: a request's own host; no caller: no key may). The pace and the policy
are checked by the dispatcher's own parser, so a value it would refuse at start-up fails the preview with
the key named.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

import pulumi

from dispatcher.phone.twilio_dial import VOICEMAIL_CHOICES
from stacks.config.call_callers import TWILIO_KEYS, dial_settings
from stacks.config.reader import Reader

# Plain stack config -> the dispatcher's variable.
POLICY_KEYS = TWILIO_KEYS  # who may call out, where and as whom (lists)
PACE_KEYS = {"twilioCallsPerSecond": "TWILIO_CALLS_PER_SECOND",
             "twilioCallMaxWaitSeconds": "TWILIO_CALL_MAX_WAIT_SECONDS"}
PUBLIC_URL_KEY = "phonePublicUrl"
PUBLIC_URL_VARIABLE = "PHONE_PUBLIC_URL"
VOICEMAIL_KEY = "twilioVoicemail"  # what a call does when a machine answers, unless the call says
VOICEMAIL_VARIABLE = "TWILIO_VOICEMAIL"
ACCOUNT_KEY = "twilioAccountSid"
ACCOUNT_VARIABLE = "TWILIO_ACCOUNT_SID"
KEYS = {**PACE_KEYS, PUBLIC_URL_KEY: PUBLIC_URL_VARIABLE, ACCOUNT_KEY: ACCOUNT_VARIABLE,
        VOICEMAIL_KEY: VOICEMAIL_VARIABLE, **POLICY_KEYS}
VOICEMAIL_OPTIONS = ("", *VOICEMAIL_CHOICES)  # "": the dispatcher's own (hang_up)
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")  # as the dispatcher checks it (dispatcher/phone/settings.py)


def load(cfg: Reader, secrets_set: Collection[str], client_keys: pulumi.Output[str]) -> dict[str, str]:
    """The settings of the keys that are set, variable -> value, as the dispatcher will read them;
    `secrets_set`: the phone secrets' variables the stack sets; `client_keys`: dispatcherApiKeys, whose
    names the callers must be."""
    found = dial_settings(cfg, "TWILIO", PACE_KEYS, POLICY_KEYS, client_keys)
    if (url := cfg.plain(PUBLIC_URL_KEY)) is not None:
        found[PUBLIC_URL_VARIABLE] = _public_url(cfg, url)
    if voicemail := cfg.string(VOICEMAIL_KEY, choices=VOICEMAIL_OPTIONS):
        found[VOICEMAIL_VARIABLE] = voicemail
    if (account := cfg.plain(ACCOUNT_KEY)) is not None:
        found[ACCOUNT_VARIABLE] = _account(cfg, account, secrets_set)
    return found


def _account(cfg: Reader, account: str, secrets_set: Collection[str]) -> str:
    """The account's SID, with the account's token the stack sets (its API keys are no stack keys)."""
    if not _ACCOUNT_SID.fullmatch(account):
        raise cfg.fail(ACCOUNT_KEY, f"must be the Twilio account's SID, AC and 32 hex digits (got {account[:40]!r})")
    if "TWILIO_AUTH_TOKEN" not in secrets_set:
        raise cfg.fail(ACCOUNT_KEY, "needs twilioAuthToken, the account's credential, to place and update calls: "
                                    "pulumi config set --secret twilioAuthToken …")
    return account


def _public_url(cfg: Reader, url: str) -> str:
    """`https://host[:port]`: what carriers were told, which their signatures cover; a deployed dispatcher's
    is never plain http, and a path would be doubled by the dispatcher's own (`/phone/twilio/calls/…`)."""
    parts = urlsplit(url.rstrip("/"))
    if (parts.scheme != "https" or not parts.hostname or parts.username is not None
            or parts.path or parts.query or parts.fragment):
        raise cfg.fail(PUBLIC_URL_KEY, f"must be https://HOST, the dispatcher's public address as carriers reach "
                                       f"it (e.g. https://calls.example.com; got {url!r})")
    return f"https://{parts.netloc}"

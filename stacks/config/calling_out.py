"""Calls the dispatcher places through Twilio's Calls API (docs/phone.md, "Calling out"): the account (its
SID, plain: an identifier, whose credential is the secret twilioAuthToken, or an API key of the account:
twilioApiKeySid, plain, with the secret twilioApiKeySecret, which the REST calls then use while the token
still checks Twilio's signed callbacks), its Twilio region (twilioRegion, twilioEdge), its pace and how long a call
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
from dispatcher.phone.twilio_host import twilio_host
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.call_callers import TWILIO_KEYS, dial_settings, refused_as_the_dispatcher
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
API_KEY_KEY = "twilioApiKeySid"  # plain: an identifier, whose credential is twilioApiKeySecret
API_KEY_VARIABLE = "TWILIO_API_KEY_SID"
API_KEY_SECRET_KEY, API_KEY_SECRET_VARIABLE = "twilioApiKeySecret", "TWILIO_API_KEY_SECRET"
TOKEN_KEY, TOKEN_VARIABLE = "twilioAuthToken", "TWILIO_AUTH_TOKEN"
# The account's Twilio region and its edge: the host of every request to Twilio (dispatcher/phone/twilio_host.py).
REGION_KEYS = {"twilioRegion": "TWILIO_REGION", "twilioEdge": "TWILIO_EDGE"}
KEYS = {**PACE_KEYS, PUBLIC_URL_KEY: PUBLIC_URL_VARIABLE, ACCOUNT_KEY: ACCOUNT_VARIABLE,
        API_KEY_KEY: API_KEY_VARIABLE, VOICEMAIL_KEY: VOICEMAIL_VARIABLE, **REGION_KEYS, **POLICY_KEYS}
VOICEMAIL_OPTIONS = ("", *VOICEMAIL_CHOICES)  # "": the dispatcher's own (hang_up)
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")  # as the dispatcher checks it (dispatcher/phone/settings.py)
_API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")  # Twilio's API key SIDs: SK and 32 hex digits


def load(cfg: Reader, secrets_set: Collection[str], client_keys: pulumi.Output[str]) -> dict[str, str]:
    """The settings of the keys that are set, variable -> value, as the dispatcher will read them;
    `secrets_set`: the phone secrets' variables the stack sets; `client_keys`: dispatcherApiKeys, whose
    names the callers must be."""
    found = dial_settings(cfg, "TWILIO", PACE_KEYS, POLICY_KEYS, client_keys)
    if (url := cfg.plain(PUBLIC_URL_KEY)) is not None:
        found[PUBLIC_URL_VARIABLE] = _public_url(cfg, url)
    if voicemail := cfg.string(VOICEMAIL_KEY, choices=VOICEMAIL_OPTIONS):
        found[VOICEMAIL_VARIABLE] = voicemail
    found |= _region(cfg)
    account = cfg.plain(ACCOUNT_KEY)
    if (key_sid := cfg.plain(API_KEY_KEY)) is not None:
        found[API_KEY_VARIABLE] = _api_key(cfg, key_sid, account, secrets_set)
    elif API_KEY_SECRET_VARIABLE in secrets_set:
        raise cfg.fail(API_KEY_SECRET_KEY, f"is set together with {API_KEY_KEY}, the API key's SID (SK…), or "
                                           f"neither is: pulumi config set {cfg.command_key(API_KEY_KEY)} SK…")
    if account is not None:
        found[ACCOUNT_VARIABLE] = _account(cfg, account, secrets_set, API_KEY_VARIABLE in found)
    if found.get(POLICY_KEYS["twilioCallers"]) and API_KEY_VARIABLE in found and TOKEN_VARIABLE not in secrets_set:
        raise cfg.fail("twilioCallers", f"places calls whose status callbacks Twilio signs with the account's auth "
                                        f"token, which the dispatcher checks: set {TOKEN_KEY} too (pulumi config "
                                        f"set --secret {TOKEN_KEY} …)")
    return found


def _region(cfg: Reader) -> dict[str, str]:
    """twilioRegion and twilioEdge that are set, variable -> value, as the dispatcher takes them together."""
    found = {variable: value for key, variable in REGION_KEYS.items() if (value := cfg.plain(key)) is not None}
    try:
        twilio_host(found)
    except DispatcherSettingsError as exc:
        raise refused_as_the_dispatcher(cfg, exc, REGION_KEYS) from None
    return found


def _account(cfg: Reader, account: str, secrets_set: Collection[str], api_key: bool) -> str:
    """The account's SID, with the account's token the stack sets, or an API key of the account."""
    if not _ACCOUNT_SID.fullmatch(account):
        raise cfg.fail(ACCOUNT_KEY, f"must be the Twilio account's SID, AC and 32 hex digits (got {account[:40]!r})")
    if TOKEN_VARIABLE not in secrets_set and not api_key:
        raise cfg.fail(ACCOUNT_KEY, f"needs {TOKEN_KEY}, the account's credential, to place and transfer calls: "
                                    f"pulumi config set --secret {TOKEN_KEY} … (or an API key of the account: "
                                    f"{API_KEY_KEY} and {API_KEY_SECRET_KEY})")
    return account


def _api_key(cfg: Reader, key_sid: str, account: str | None, secrets_set: Collection[str]) -> str:
    """The API key's SID: SK and 32 hex digits, with its secret and the account whose calls it updates."""
    if not _API_KEY_SID.fullmatch(key_sid):
        # Never echoed: a key's secret given here by mistake would reach the preview's log.
        said = (f"must be a Twilio API key's SID, SK and 32 hex digits (got {len(key_sid)} characters"
                f"{', starting ' + repr(key_sid[:2]) if key_sid[:2].isalpha() else ''}); its secret is "
                f"{API_KEY_SECRET_KEY}, set with --secret")
        if not key_sid.startswith("SK"):
            said += (". If this is the key's secret, it is now in plain text in the stack's file: revoke the key "
                     "in Twilio and make a new one")
        raise cfg.fail(API_KEY_KEY, said)
    if API_KEY_SECRET_VARIABLE not in secrets_set:
        raise cfg.fail(API_KEY_KEY, f"needs {API_KEY_SECRET_KEY}, the key's secret: pulumi config set --secret "
                                    f"{cfg.command_key(API_KEY_SECRET_KEY)} …")
    if account is None:
        raise cfg.fail(API_KEY_KEY, f"needs {ACCOUNT_KEY}, the account whose calls the key places and updates: "
                                    f"pulumi config set {cfg.command_key(ACCOUNT_KEY)} AC…")
    return key_sid


def _public_url(cfg: Reader, url: str) -> str:
    """`https://host[:port]`: what carriers were told, which their signatures cover; a deployed dispatcher's
    is never plain http, and a path would be doubled by the dispatcher's own (`/phone/twilio/calls/…`)."""
    parts = urlsplit(url.rstrip("/"))
    if (parts.scheme != "https" or not parts.hostname or parts.username is not None
            or parts.path or parts.query or parts.fragment):
        raise cfg.fail(PUBLIC_URL_KEY, f"must be https://HOST, the dispatcher's public address as carriers reach "
                                       f"it (e.g. https://calls.example.com; got {url!r})")
    return f"https://{parts.netloc}"

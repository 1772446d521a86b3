"""Calls the dispatcher places through Telnyx's TeXML API (docs/phone.md, "Calling out"): the account (its
id, a UUID: plain, an identifier) and the TeXML application that places them, with the secrets
telnyxTransferApiKey (the dispatcher's Telnyx API key) and telnyxPublicKey (which checks the calls'
signed callbacks); their pace, voicemail choice and who may place them (stacks/config/call_callers.py).
Each key left unset leaves the dispatcher's own default (no account: no calls placed through Telnyx).
"""

from __future__ import annotations

from collections.abc import Collection

import pulumi

from dispatcher.phone.telnyx_ids import ACCOUNT_SID
from dispatcher.phone.twilio_dial import VOICEMAIL_CHOICES
from stacks.config.call_callers import dial_settings, policy_keys
from stacks.config.reader import Reader

PACE_KEYS = {"telnyxCallsPerSecond": "TELNYX_CALLS_PER_SECOND",
             "telnyxCallMaxWaitSeconds": "TELNYX_CALL_MAX_WAIT_SECONDS"}
POLICY_KEYS = policy_keys("telnyx", "TELNYX")
ACCOUNT_KEY = "telnyxAccountSid"
APPLICATION_KEY = "telnyxApplicationSid"
VOICEMAIL_KEY = "telnyxVoicemail"
KEYS = {**PACE_KEYS, ACCOUNT_KEY: "TELNYX_ACCOUNT_SID", APPLICATION_KEY: "TELNYX_APPLICATION_SID",
        VOICEMAIL_KEY: "TELNYX_VOICEMAIL", **POLICY_KEYS}
VOICEMAIL_OPTIONS = ("", *VOICEMAIL_CHOICES)  # "": the dispatcher's own (hang_up)
# The secrets a call placed through Telnyx needs besides the account (dispatcher/phone/state.py).
NEEDED_SECRETS = {"telnyxTransferApiKey": "TELNYX_TRANSFER_API_KEY", "telnyxPublicKey": "TELNYX_PUBLIC_KEY"}


def load(cfg: Reader, secrets_set: Collection[str], client_keys: pulumi.Output[str]) -> dict[str, str]:
    """The settings of the keys that are set, variable -> value, as the dispatcher will read them;
    `secrets_set`: the phone secrets' variables the stack sets; `client_keys`: dispatcherApiKeys."""
    found = dial_settings(cfg, "TELNYX", PACE_KEYS, POLICY_KEYS, client_keys)
    if voicemail := cfg.string(VOICEMAIL_KEY, choices=VOICEMAIL_OPTIONS):
        found[KEYS[VOICEMAIL_KEY]] = voicemail
    account, application = cfg.plain(ACCOUNT_KEY), cfg.plain(APPLICATION_KEY)
    if account is None and application is None:
        return found
    if account is None or application is None:
        missing = ACCOUNT_KEY if account is None else APPLICATION_KEY
        raise cfg.fail(missing, f"is set together with {ACCOUNT_KEY} and {APPLICATION_KEY} (the account's id and "
                                f"the TeXML application that places the calls): pulumi config set {missing} …")
    if not ACCOUNT_SID.fullmatch(account):
        raise cfg.fail(ACCOUNT_KEY, f"must be the Telnyx account's id, a UUID (Mission Control Portal, account "
                                    f"settings; got {account[:40]!r})")
    if missing_secrets := [key for key, variable in NEEDED_SECRETS.items() if variable not in secrets_set]:
        raise cfg.fail(ACCOUNT_KEY, f"needs {' and '.join(missing_secrets)} to place calls and check their "
                                    f"callbacks: " + "; ".join(f"pulumi config set --secret {key} …"
                                                               for key in missing_secrets))
    return {**found, KEYS[ACCOUNT_KEY]: account, KEYS[APPLICATION_KEY]: application}

"""Calls the dispatcher places through Twilio's Calls API (docs/phone.md, "Calling out"): the account's
pace and how long a call may wait for it, and the public address Twilio's status and answering-machine
callbacks come back to. Each key left unset leaves the dispatcher's own default (one call a second,
five seconds' wait; no public URL: a request's own host). The pace is checked by the dispatcher's own
parser, so a value it would refuse at start-up fails the preview with the key named.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dispatcher.phone.twilio_dial import TwilioDialSettings
from dispatcher.settings import SettingsError as DispatcherSettingsError
from stacks.config.reader import Reader

# Plain stack config -> the dispatcher's variable.
PACE_KEYS = {"twilioCallsPerSecond": "TWILIO_CALLS_PER_SECOND",
             "twilioCallMaxWaitSeconds": "TWILIO_CALL_MAX_WAIT_SECONDS"}
PUBLIC_URL_KEY = "phonePublicUrl"
PUBLIC_URL_VARIABLE = "PHONE_PUBLIC_URL"
KEYS = {**PACE_KEYS, PUBLIC_URL_KEY: PUBLIC_URL_VARIABLE}


def load(cfg: Reader) -> dict[str, str]:
    """The settings of the keys that are set, variable -> value, as the dispatcher will read them."""
    found = {variable: value for key, variable in PACE_KEYS.items() if (value := cfg.optional(key)) is not None}
    try:
        TwilioDialSettings.from_env(found)
    except DispatcherSettingsError as exc:
        message = str(exc)
        for key, variable in PACE_KEYS.items():
            message = message.replace(f"{variable}=", f"{cfg.key(key)}=")
        raise cfg.fail(next(key for key, variable in PACE_KEYS.items() if variable in str(exc)),
                       f"is refused as the dispatcher would refuse it: {message}") from None
    if (url := cfg.optional(PUBLIC_URL_KEY)) is not None:
        found[PUBLIC_URL_VARIABLE] = _public_url(cfg, url)
    return found


def _public_url(cfg: Reader, url: str) -> str:
    """`https://host[:port]`: what carriers were told, which their signatures cover; a deployed dispatcher's
    is never plain http, and a path would be doubled by the dispatcher's own (`/phone/twilio/calls/…`)."""
    parts = urlsplit(url.rstrip("/"))
    if (parts.scheme != "https" or not parts.hostname or parts.username is not None
            or parts.path or parts.query or parts.fragment):
        raise cfg.fail(PUBLIC_URL_KEY, f"must be https://HOST, the dispatcher's public address as carriers reach "
                                       f"it (e.g. https://calls.example.com; got {url!r})")
    return f"https://{parts.netloc}"

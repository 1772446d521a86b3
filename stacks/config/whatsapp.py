"""WhatsApp Business calls on a stack (docs/phone.md, "WhatsApp calls"): Meta's token, the app's secret
and the webhook's verify token are secrets that only the dispatcher reads, by reference, through the
phone secrets' table (stacks/config/phone.py). `whatsappNumbers` is plain config: it names each
business number's API key by its name (`support`) and a release, never a key itself. All four are set
together or none, as the dispatcher requires; the numbers are checked by its own parser, so a value it
would refuse at start-up fails the preview with the key named.
"""

from __future__ import annotations

from collections.abc import Collection

import pulumi

from dispatcher.settings import SettingsError as DispatcherSettingsError
from dispatcher.whatsapp.settings import NUMBERS_FORM, parse_numbers
from stacks.config.reader import Reader

# Secret stack config -> the dispatcher's variable.
SECRET_KEYS = {
    "whatsappAccessToken": "WHATSAPP_ACCESS_TOKEN",
    "whatsappAppSecret": "WHATSAPP_APP_SECRET",
    "whatsappVerifyToken": "WHATSAPP_VERIFY_TOKEN",
}
NUMBERS_KEY = "whatsappNumbers"
NUMBERS_VARIABLE = "WHATSAPP_NUMBERS"
_EXAMPLE = "{\"106540352242922\": \"support@stable\"}"


def numbers(cfg: Reader, secrets_set: Collection[str]) -> str | None:
    """WHATSAPP_NUMBERS as the dispatcher reads it, or None without WhatsApp calls; `secrets_set`: the
    phone secrets' variables the stack sets. A stack always has API keys, so each number names one."""
    listing = _listing(cfg)
    given = {**{key: env in secrets_set for key, env in SECRET_KEYS.items()}, NUMBERS_KEY: listing is not None}
    if not any(given.values()):
        return None
    if missing := [key for key, present in given.items() if not present]:
        fixes = "; ".join(f"pulumi config set --path '{NUMBERS_KEY}.PHONE_NUMBER_ID' KEY_NAME[@RELEASE]"
                          if key == NUMBERS_KEY else f"pulumi config set --secret {key} …" for key in missing)
        set_ = ", ".join(key for key, present in given.items() if present)
        raise cfg.fail(missing[0], f"must be set with {set_}: WhatsApp calls need {', '.join(given)} together "
                                   f"({', '.join(missing)} missing): {fixes} (docs/phone.md, WhatsApp calls)")
    assert listing is not None
    try:
        parse_numbers(listing, keyed=True)
    except DispatcherSettingsError as exc:
        raise cfg.fail(NUMBERS_KEY, f"is refused as the dispatcher would refuse it: "
                                    f"{str(exc).replace(NUMBERS_VARIABLE, NUMBERS_KEY)}") from None
    return listing


def _listing(cfg: Reader) -> str | None:
    """The numbers as the dispatcher's `ID=KEY[@RELEASE],…`: a map (`pulumi config set --path
    'whatsappNumbers.106540352242922' support@stable`) or that text itself."""
    raw = cfg.plain(NUMBERS_KEY)
    if raw is None:
        return None
    try:
        value = cfg.structured(NUMBERS_KEY)
    except (ValueError, pulumi.config.ConfigTypeError):
        value = raw
    if isinstance(value, dict):
        if not value or not all(isinstance(owner, str) for owner in value.values()):
            raise cfg.fail(NUMBERS_KEY, f"must map each phone number ID to its key's name and release, "
                                        f"e.g. {_EXAMPLE} ({NUMBERS_FORM})")
        return ",".join(f"{number}={owner}" for number, owner in value.items())
    return raw  # the text itself, which a lone number ID would have parsed as JSON's number

"""WhatsApp's settings: the Graph API token and the app secret (secrets), the webhook's verify token,
and which API key and release each business phone number's calls run as (`WHATSAPP_NUMBERS`).

Meta's token answers calls and hangs them up for every number of the business account: the dispatcher
holds it, never a bot. All four are set together, or none (no WhatsApp calls)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.releases.names import is_release_name
from dispatcher.settings import KEY_NAME, KEY_NAME_RULE, SettingsError, credentialed_url
from voicefleet_settings.read import setting_text

REQUIRED = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_NUMBERS")
NUMBERS_FORM = "PHONE_NUMBER_ID=KEY_NAME[@RELEASE], comma-separated (e.g. 106540352242922=support@stable)"
MAX_ID_DIGITS = 32


@dataclass(frozen=True)
class NumberRoute:
    """A business phone number's calls: the API key (by name) that owns their sessions, and the release
    they are pinned to (None: the key's default, else one drawn by weight, as a start's)."""

    phone_number_id: str
    key: str | None  # None: a keyless local dispatcher's one caller
    release: str | None = None


@dataclass(frozen=True)
class WhatsAppSettings:
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    numbers: Mapping[str, NumberRoute]
    graph_url: str = "https://graph.facebook.com/v23.0"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, keyed: bool) -> WhatsAppSettings | None:
        """None when none of the four is set; `keyed`: the dispatcher has API keys, so each number names one."""
        given = {name: setting_text(env, name) for name in REQUIRED}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise SettingsError(f"WhatsApp calls need {', '.join(REQUIRED)} together: set {', '.join(missing)} "
                                "(docs/phone.md, WhatsApp calls)")
        return cls(given["WHATSAPP_ACCESS_TOKEN"], given["WHATSAPP_APP_SECRET"], given["WHATSAPP_VERIFY_TOKEN"],
                   parse_numbers(given["WHATSAPP_NUMBERS"], keyed=keyed),
                   credentialed_url("WHATSAPP_GRAPH_URL", setting_text(env, "WHATSAPP_GRAPH_URL").rstrip("/"),
                                    "the WhatsApp token"))


def parse_numbers(text: str, *, keyed: bool) -> dict[str, NumberRoute]:
    routes: dict[str, NumberRoute] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        number, _, owner = item.partition("=")
        key, _, release = owner.partition("@")
        number, key, release = number.strip(), key.strip(), release.strip()
        if not (number.isascii() and number.isdigit() and len(number) <= MAX_ID_DIGITS):
            raise SettingsError(f"WHATSAPP_NUMBERS: {number[:40]!r} is not a phone number ID (Meta's digits, as "
                                f"WhatsApp Manager shows it); the form: {NUMBERS_FORM}")
        if number in routes:
            raise SettingsError(f"WHATSAPP_NUMBERS names {number} twice")
        if key and not KEY_NAME.fullmatch(key):
            raise SettingsError(f"WHATSAPP_NUMBERS: {key[:40]!r} is not a key name ({KEY_NAME_RULE})")
        if keyed and not key:
            raise SettingsError(f"WHATSAPP_NUMBERS: {number} names no API key, and this dispatcher has keys: "
                                f"name the key its calls run as ({NUMBERS_FORM})")
        if release and not is_release_name(release):
            raise SettingsError(f"WHATSAPP_NUMBERS: {release[:40]!r} is not a release name")
        routes[number] = NumberRoute(number, key or None, release or None)
    if not routes:
        raise SettingsError(f"WHATSAPP_NUMBERS names no number: {NUMBERS_FORM}")
    return routes

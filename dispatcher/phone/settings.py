"""Phone settings: the carriers' credentials and where carriers reach this dispatcher.

All optional: a carrier whose credential is unset is reached only with a one-time path token
(from `POST /start` or a signed webhook of a carrier that is configured), or keyless on a local
loopback dispatcher. Each variable is documented in docs/phone.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dispatcher.phone import daily_signature
from dispatcher.phone.carrier_recording import parse_carrier_recording
from dispatcher.phone.daily_caller_id import parse_caller_id
from dispatcher.phone.plivo_calls import PLIVO_API_URL
from dispatcher.phone.plivo_ids import AUTH_ID, AUTH_ID_RULE
from dispatcher.phone.relay import MAX_FRAMES_PER_SECOND
from dispatcher.phone.signatures import TelnyxKey
from dispatcher.phone.telnyx_ids import TELNYX_API_URL
from dispatcher.phone.tokens import derive_key
from dispatcher.phone.transfer_allow import TransferTargets, parse_transfer_targets
from dispatcher.phone.twilio_calls import TwilioCredentials
from dispatcher.phone.twilio_host import TwilioHost, twilio_host
from dispatcher.settings import SettingsError, credentialed_url
from voicefleet_settings.read import setting_bool, setting_float, setting_int, setting_text

CARRIERS = ("twilio", "telnyx", "plivo", "exotel")


@dataclass(frozen=True)
class PhoneSettings:
    token_key: bytes = field(repr=False)
    public_url: str | None = None  # https://calls.example.com: what carriers were told (signatures cover it)
    twilio_auth_token: str | None = field(default=None, repr=False)
    # The REST credentials a transfer updates calls with (dispatcher/phone/twilio_calls.py): None, no transfers.
    twilio_rest: TwilioCredentials | None = field(default=None, repr=False)
    # TWILIO_REGION and TWILIO_EDGE: the account's region, whose host every Twilio REST call goes to.
    twilio_host: TwilioHost = TwilioHost()
    twilio_api_url: str = TwilioHost().url  # TWILIO_API_URL (a test's fake), else the host's
    # PHONE_TRANSFER_TARGETS: where calls may be handed (dispatcher/phone/transfer_allow.py); None, nowhere.
    transfer_targets: TransferTargets | None = None
    transfer_time_limit: int = 3600  # a transferred call's longest, in seconds (`<Dial timeLimit>`)
    telnyx_key: TelnyxKey | None = field(default=None, repr=False)
    # The API key a transfer updates Telnyx calls with (dispatcher/phone/telnyx_calls.py): None, no transfers.
    telnyx_api_key: str | None = field(default=None, repr=False)
    telnyx_api_url: str = TELNYX_API_URL
    plivo_auth_token: str | None = field(default=None, repr=False)
    # With the auth token, what a transfer updates Plivo calls with (dispatcher/phone/plivo_calls.py): None, none.
    plivo_auth_id: str | None = None
    plivo_api_url: str = PLIVO_API_URL
    exotel_basic: str | None = field(default=None, repr=False)  # "API_KEY:API_TOKEN"
    daily_dialin_secret: str | None = field(default=None, repr=False)  # the path segment of room_creation_api
    daily_webhook_key: bytes | None = field(default=None, repr=False)  # Daily's webhooks' HMAC key (decoded)
    # The `id` of a number bought on the Daily domain, the caller id a transfer's person sees (Daily's
    # `callerId`); None: Daily picks one of the domain's numbers, a stranger's to the person.
    daily_dialout_caller_id: str | None = None
    # A Twilio stream admitted by its upgrade's signature alone (no one-time token): off unless
    # TWILIO_SIGNED_STREAMS=1, since that signature covers a URL that never changes.
    twilio_signed_streams: bool = False
    handshake_seconds: float = 10.0  # a carrier's stream must send its first two frames within this
    silence_seconds: float = 10.0  # past its handshake, a carrier's stream silent this long is ended
    keyless: bool = False  # a local dispatcher on loopback with no API keys: calls need no proof
    drain_seconds: float = 1800.0  # on SIGTERM, how long calls in flight may go on (dispatcher/serving/draining.py)
    max_frames_per_second: int = MAX_FRAMES_PER_SECOND  # each side of a call, past which its socket is closed
    # Calls Exotel's standing credential may hold at once (EXOTEL_MAX_CALLS); None: half the share
    # of the calls carriers open (`standing_calls`).
    exotel_max_calls: int | None = None
    # With several regions: a webhook's call whose bot would start cold here past this is handed to
    # a region that can start it warm (a caller hears silence until the bot speaks: docs/regions.md).
    max_wait_seconds: float = 3.0
    # PHONE_CARRIER_RECORDING: the carriers whose answer also starts their own dual-channel recording.
    carrier_recording: frozenset[str] = frozenset()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, keyless: bool, bot_channel_token: str | None, default_drain_seconds: int = 1800
    ) -> PhoneSettings:
        secret = setting_text(env, "PHONE_TOKEN_SECRET")
        if secret and len(secret) < 32:
            raise SettingsError("PHONE_TOKEN_SECRET must be at least 32 characters")
        # Replicas must share the key: PHONE_TOKEN_SECRET, else the deployment's bot credential
        # (separated from its other use by derive_key), else (one local process) a fresh one.
        key = derive_key(secret or bot_channel_token or secrets.token_urlsafe(32))
        public_url = setting_text(env, "PHONE_PUBLIC_URL").rstrip("/") or None
        if public_url is not None and not public_url.startswith(("https://", "http://")):
            raise SettingsError(f"PHONE_PUBLIC_URL={public_url!r} must start with https:// (or http:// locally)")
        telnyx = setting_text(env, "TELNYX_PUBLIC_KEY")
        try:
            telnyx_key = TelnyxKey(telnyx) if telnyx else None
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        exotel_key, exotel_token = setting_text(env, "EXOTEL_API_KEY"), setting_text(env, "EXOTEL_API_TOKEN")
        if bool(exotel_key) != bool(exotel_token):
            raise SettingsError("EXOTEL_API_KEY and EXOTEL_API_TOKEN are set together or not at all")
        dialin = setting_text(env, "DAILY_DIALIN_SECRET") or None
        if dialin is not None and (len(dialin) < 32 or not all(c.isalnum() or c in "-_" for c in dialin)):
            raise SettingsError("DAILY_DIALIN_SECRET must be at least 32 letters, digits, - or _ (it is a URL segment)")
        webhook_secret = setting_text(env, "DAILY_WEBHOOK_SECRET")
        try:
            webhook_key = daily_signature.webhook_key(webhook_secret) if webhook_secret else None
        except ValueError as exc:
            raise SettingsError(f"DAILY_WEBHOOK_SECRET {exc}") from None
        try:
            daily_caller_id = parse_caller_id(setting_text(env, "DAILY_DIALOUT_CALLER_ID"))
        except ValueError as exc:
            raise SettingsError(f"DAILY_DIALOUT_CALLER_ID={exc}") from None
        host = twilio_host(env)
        twilio_rest = _twilio_rest(env, host)
        # TWILIO_API_URL, a test's fake, wins: every Twilio REST call goes to this one URL either way.
        given_api_url = setting_text(env, "TWILIO_API_URL").rstrip("/")
        twilio_api_url = (credentialed_url("TWILIO_API_URL", given_api_url, "the account's credentials")
                          if given_api_url else host.url)
        telnyx_api_key = setting_text(env, "TELNYX_TRANSFER_API_KEY") or None
        telnyx_api_url = server_only("TELNYX_API_URL", credentialed_url(
            "TELNYX_API_URL", setting_text(env, "TELNYX_API_URL").rstrip("/"), "the API key"))
        plivo_auth_id = setting_text(env, "PLIVO_AUTH_ID") or None
        if plivo_auth_id is not None and not AUTH_ID.fullmatch(plivo_auth_id):
            raise SettingsError(f"PLIVO_AUTH_ID must be {AUTH_ID_RULE}")
        plivo_api_url = server_only("PLIVO_API_URL", credentialed_url(
            "PLIVO_API_URL", setting_text(env, "PLIVO_API_URL").rstrip("/"), "the auth token"))
        try:
            transfer_targets = parse_transfer_targets(setting_text(env, "PHONE_TRANSFER_TARGETS"))
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        carrier_recording = parse_carrier_recording(setting_text(env, "PHONE_CARRIER_RECORDING"))
        for carrier, credential in (("twilio", "TWILIO_AUTH_TOKEN"), ("telnyx", "TELNYX_PUBLIC_KEY")):
            if carrier in carrier_recording and not env.get(credential, "").strip():
                raise SettingsError(f"PHONE_CARRIER_RECORDING names {carrier}: set {credential} too, so its "
                                    "recording callbacks can be verified (an unsigned one is never trusted)")
        return cls(
            token_key=key,
            carrier_recording=carrier_recording,
            daily_dialin_secret=dialin,
            daily_webhook_key=webhook_key,
            daily_dialout_caller_id=daily_caller_id,
            public_url=public_url,
            twilio_auth_token=setting_text(env, "TWILIO_AUTH_TOKEN") or None,
            twilio_rest=twilio_rest,
            twilio_host=host,
            twilio_api_url=twilio_api_url,
            transfer_targets=transfer_targets,
            transfer_time_limit=setting_int(env, "PHONE_TRANSFER_TIME_LIMIT_SECONDS"),
            telnyx_key=telnyx_key,
            telnyx_api_key=telnyx_api_key,
            telnyx_api_url=telnyx_api_url,
            plivo_auth_token=setting_text(env, "PLIVO_AUTH_TOKEN") or None,
            plivo_auth_id=plivo_auth_id,
            plivo_api_url=plivo_api_url,
            exotel_basic=f"{exotel_key}:{exotel_token}" if exotel_key else None,
            twilio_signed_streams=setting_bool(env, "TWILIO_SIGNED_STREAMS"),
            handshake_seconds=float(setting_int(env, "PHONE_HANDSHAKE_SECONDS")),
            silence_seconds=float(setting_int(env, "PHONE_SILENCE_SECONDS")),
            keyless=keyless,
            drain_seconds=float(setting_int(env, "PHONE_DRAIN_SECONDS", default=default_drain_seconds)),
            # At least a carrier's cadence (a 20 ms frame): a lower bound would close every call.
            max_frames_per_second=setting_int(env, "PHONE_MAX_FRAMES_PER_SECOND"),
            exotel_max_calls=setting_int(env, "EXOTEL_MAX_CALLS", default=0) or None,
            max_wait_seconds=setting_float(env, "PHONE_MAX_WAIT_SECONDS"),
        )

    def standing_calls(self, carriers_share: int) -> int:
        """EXOTEL_MAX_CALLS, else half of `carriers_share` (the sessions the calls carriers open may
        hold), at least one: a credential that never expires does not get all of it."""
        return self.exotel_max_calls or max(1, carriers_share // 2)


def _twilio_rest(env: Mapping[str, str], host: TwilioHost) -> TwilioCredentials | None:
    """TWILIO_ACCOUNT_SID with an API key (TWILIO_API_KEY_SID + TWILIO_API_KEY_SECRET), else with
    TWILIO_AUTH_TOKEN, made in `host`'s region: what a transfer updates calls with. None without the Account SID."""
    account = setting_text(env, "TWILIO_ACCOUNT_SID")
    key_sid, key_secret = setting_text(env, "TWILIO_API_KEY_SID"), setting_text(env, "TWILIO_API_KEY_SECRET")
    if bool(key_sid) != bool(key_secret):
        raise SettingsError("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET are set together or not at all")
    if not account:
        if key_sid:
            raise SettingsError("TWILIO_API_KEY_SID needs TWILIO_ACCOUNT_SID: the calls it updates are that account's")
        return None
    if not re.fullmatch(r"AC[0-9a-fA-F]{32}", account):
        raise SettingsError("TWILIO_ACCOUNT_SID must be the account's SID: AC and 32 hex digits")
    if key_sid:
        return TwilioCredentials(account, key_sid, key_secret, region=host.shown_region)
    token = setting_text(env, "TWILIO_AUTH_TOKEN")
    if not token:
        raise SettingsError("TWILIO_ACCOUNT_SID needs TWILIO_AUTH_TOKEN, or TWILIO_API_KEY_SID and "
                            "TWILIO_API_KEY_SECRET, to update calls")
    return TwilioCredentials(account, account, token, region=host.shown_region)


def server_only(name: str, url: str) -> str:
    """`url` with no path: the dispatcher adds the API's own (`/v2/texml/…`), so Telnyx's documented
    server base `https://api.telnyx.com/v2` would make every request a 404."""
    parsed = urlsplit(url)
    if parsed.path or parsed.query or parsed.fragment:
        raise SettingsError(f"{name}={url[:80]!r} must be the server alone, such as "
                            f"{parsed.scheme}://{parsed.netloc}: the dispatcher adds the API's path itself")
    return url

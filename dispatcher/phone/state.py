"""What phone calls need, built once per app; the routes reach it as the app state's `phone`."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from botchannel.transfer import METHOD_CALL_TRANSFER
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.remote import ask_bot
from dispatcher.media.daily import DailyRooms
from dispatcher.media.rooms import Rooms
from dispatcher.observability.metrics import Metrics
from dispatcher.phone.calls import OwnerRelay, PhoneCalls, Sessions, StandingCap, Timeline
from dispatcher.phone.daily_calltransfer import DailyCallTransfers
from dispatcher.phone.daily_hook_relay import DailyHookRelay
from dispatcher.phone.daily_legs import DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_transfers import DailyTransfers, SessionReads
from dispatcher.phone.daily_warm import CALL_SECONDS, DailyWarm
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.eval_tokens import EvalTokens
from dispatcher.phone.exotel_transfers import ExotelTransfers
from dispatcher.phone.media_links import MediaLinks
from dispatcher.phone.metrics import PhoneMetrics
from dispatcher.phone.placed_turns import PlacedTurns
from dispatcher.phone.plivo_calls import PlivoCalls
from dispatcher.phone.plivo_warm import PlivoWarm
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.sip_transfers import SipTransfers
from dispatcher.phone.telnyx_calls import ACCOUNT_SID, TelnyxCalls
from dispatcher.phone.telnyx_dial import TelnyxDialer
from dispatcher.phone.telnyx_warm import TelnyxWarm
from dispatcher.phone.tokens import CallTokens
from dispatcher.phone.transfer_anywhere import TransfersAnywhere
from dispatcher.phone.transfer_asks import bot_transfer
from dispatcher.phone.transfers import Transfers
from dispatcher.phone.trunk_calls import TrunkCallSettings
from dispatcher.phone.twilio_calls import TwilioCalls
from dispatcher.phone.twilio_dial import dial_settings_from_env
from dispatcher.phone.twilio_dialer import TwilioDialer
from dispatcher.phone.twilio_warm import TwilioWarm, WarmCallbacks
from dispatcher.regions.config import Regions, region_tag
from dispatcher.regions.pace_homes import RegionPaces
from dispatcher.regions.peers import Peers
from dispatcher.sessions.ids import Caller
from dispatcher.settings import Settings
from dispatcher.store.coordination import Coordination, CreateLimits, HeldPlaces, OneTimeUse, ReleasableOnce
from voicefleet_settings.read import SettingsError, setting_text


@dataclass
class PhoneState:
    settings: PhoneSettings
    tokens: CallTokens
    calls: PhoneCalls
    spent: OneTimeUse  # a token spent at every replica (one process: in its memory)
    # Signed webhooks seen at any replica (Twilio CallSids, Plivo nonces, Telnyx signatures); with
    # several replicas, in the store, and refused when it does not answer.
    webhooks: ReleasableOnce
    # The places under the session cap that calls other regions handed here hold until their
    # streams connect, for the whole region (dispatcher/store/held_places.py).
    handed: HeldPlaces
    transfers: Transfers  # the calls relayed here, each of which may be handed to a person
    handing: TransfersAnywhere  # a call handed to a person at whichever replica holds it
    # This region's SIP edges' transfers, for another region's call spilled there (api/spilled_transfer.py)
    sip: SipTransfers | None = None
    twilio_warm: TwilioWarm | None = None  # a Twilio call's warm transfer, for its callbacks' routes
    telnyx_warm: TelnyxWarm | None = None  # a Telnyx call's (telnyx_warm.py)
    plivo_warm: PlivoWarm | None = None  # a Plivo call's (plivo_warm.py)
    daily_hooks: DailyHooks | None = None  # Daily's signed webhooks (dialout.*): a Daily warm transfer's answer
    daily_relay: DailyHookRelay | None = None  # several regions: another region's dial-out events sent there
    # Daily's calltransfer.* webhooks: a cold transfer's person answered, hung up; an unknown outcome settled.
    daily_calltransfers: DailyCallTransfers | None = None
    # Calls placed through a carrier's Calls API (dispatcher/phone/dialer.py), by carrier (`twilio`,
    # `telnyx`); a carrier missing here: why not, in `no_dialer`.
    dialers: dict[str, Dialer] = field(default_factory=dict)
    no_dialer: dict[str, str] = field(default_factory=dict)
    metrics: PhoneMetrics | None = None
    eval_tokens: EvalTokens | None = None  # a SIP eval's mark and pin (eval_tokens.py); None: refused
    active_calls: int = 0
    draining: bool = False  # a deploy is replacing this replica: calls in flight go on, new ones go elsewhere
    clock: Callable[[], float] = time.time  # epoch seconds: when a Daily dial-in call credential expires
    # A token's owner (a caller id) → that API key's caller: the API's keys (`Authenticator.by_id`).
    owners: Callable[[str], Caller | None] = field(default=lambda _caller_id: None)
    # A placed call's transfer and its answering-machine verdict: whichever comes first acts (placed_turns.py).
    turns: PlacedTurns | None = None

    def start_draining(self) -> None:
        self.draining = True


def build_phone_state(
    env: Mapping[str, str],
    settings: Settings,
    sessions: Sessions,
    channels: BotChannels,
    metrics: Metrics,
    coordination: Coordination,
    owner_relay: OwnerRelay,
    owners: Callable[[str], Caller | None] = lambda _caller_id: None,
    timeline: Timeline | None = None,
    regions: Regions | None = None,
    paces: RegionPaces | None = None,
    rooms: Rooms | None = None,
    reads: SessionReads | None = None,
    peers: Peers | None = None,
) -> PhoneState:
    """`owner_relay` reaches the replica holding a bot's channel: with several replicas a call's two
    sockets may be at two of them."""
    # Keyless only where the API is keyless: a local dispatcher that serves loopback alone.
    keyless = settings.machines == "local" and not settings.api_key_hashes
    phone = PhoneSettings.from_env(
        env, keyless=keyless, bot_channel_token=settings.bot_channel_token,
        default_drain_seconds=settings.max_session_seconds,
    )
    twilio = TwilioCalls(phone.twilio_rest, phone.twilio_api_url) if phone.twilio_rest is not None else None
    edge = TrunkCallSettings.from_env(env)  # the SIP edge hands its calls over too (docs/sip.md)
    # Telnyx calls are named by their signed webhook alone: no key to check it, no Telnyx transfers.
    telnyx = (TelnyxCalls(phone.telnyx_api_key, phone.telnyx_api_url)
              if phone.telnyx_api_key is not None and phone.telnyx_key is not None else None)
    # Plivo fetches a transferred call's XML from this region's URL, else PHONE_PUBLIC_URL, never a request's
    # Host (dispatcher/phone/access.py `carrier_base`, which imports this module).
    here = regions or Regions()
    plivo = (PlivoCalls(phone.plivo_auth_id, phone.plivo_auth_token,
                        here.urls[here.here] if here.several else phone.public_url, phone.token_key,
                        phone.plivo_api_url, claims=coordination.webhooks)
             if phone.plivo_auth_id is not None and phone.plivo_auth_token is not None else None)
    sip = SipTransfers(edge, coordination.key_holders) if edge is not None else None
    several = (regions or Regions()).several
    dialers: dict[str, Dialer] = {}
    no_dialer: dict[str, str] = {}
    limits = paces or coordination  # with several regions, a carrier account's pace is held across them
    for carrier, (dialer, why_not) in (("twilio", _dialer(env, phone, twilio, coordination, limits, several)),
                                       ("telnyx", _telnyx_dialer(env, phone, telnyx, coordination, limits, several))):
        if dialer is not None:
            dialers[carrier] = dialer
        else:
            no_dialer[carrier] = why_not
    turns = PlacedTurns(coordination.key_holders)
    # A warm transfer's call to the person reports to this dispatcher's own address, signed (twilio_warm.py).
    warm_base = here.urls[here.here] if here.several else phone.public_url
    twilio_warm = (TwilioWarm(twilio, coordination.key_holders, WarmCallbacks(warm_base, phone.token_key),
                              functools.partial(ask_bot, channels, owner_relay))
                   if twilio is not None and warm_base is not None and phone.twilio_auth_token else None)
    # Telnyx's consult call is placed by the TeXML application calls out use (TELNYX_APPLICATION_SID).
    telnyx_application = setting_text(env, "TELNYX_APPLICATION_SID")
    telnyx_warm = (TelnyxWarm(telnyx, coordination.key_holders, WarmCallbacks(warm_base, phone.token_key, "telnyx"),
                              functools.partial(ask_bot, channels, owner_relay), application_sid=telnyx_application,
                              account_sid=setting_text(env, "TELNYX_ACCOUNT_SID") or None)
                   if telnyx is not None and warm_base is not None and telnyx_application else None)
    # Plivo's consult call fetches its briefing from, and reports to, the same address (plivo_warm.py).
    plivo_warm = (PlivoWarm(plivo, coordination.key_holders, WarmCallbacks(warm_base, phone.token_key, "plivo"),
                            functools.partial(ask_bot, channels, owner_relay))
                  if plivo is not None and warm_base is not None else None)
    transfers = Transfers(twilio, timeline, phone.transfer_targets, time_limit=phone.transfer_time_limit,
                          sip=sip, telnyx=telnyx, plivo=plivo, placed=dialers, turns=turns,  # placed out, too
                          twilio_warm=twilio_warm, telnyx_warm=telnyx_warm, plivo_warm=plivo_warm,
                          # Exotel's calls go to a person through their flow's Connect applet, whose URL the
                          # stream's Basic credential keys (exotel_connect.py)
                          exotel=ExotelTransfers(coordination.key_holders) if phone.exotel_basic else None)
    # A Daily dial-in call is handed over by Daily's REST API, with the dispatcher's own key (daily_transfers.py);
    # warm (daily_warm.py) only with Daily's webhooks: a dial-out's leg is in the room while the person's phone
    # still rings, and only the signed dialout.answered, kept in the store for any replica, tells an answer.
    # With several regions each leg carries this region's tag, and an event of another region's leg is relayed there
    # (Daily posts every dial-out event of the domain to one URL: daily_hook_relay.py).
    daily = daily_hooks = daily_calltransfers = None
    # Wherever Daily's webhook may land, rooms of its own or not: it sends another region's events on.
    daily_relay = (DailyHookRelay(peers) if several and peers is not None and phone.daily_webhook_key is not None
                   else None)
    if isinstance(rooms, DailyRooms) and reads is not None:
        daily_warm = None
        if phone.daily_webhook_key is not None:
            legs = DialoutLegs(coordination.key_holders)
            daily_hooks = DailyHooks(legs, stop_in_room(rooms, CALL_SECONDS))
            if timeline is not None:  # a cold transfer's record, in the same store, settled by Daily's word
                daily_calltransfers = DailyCallTransfers(rooms, coordination.key_holders, timeline)
            daily_warm = DailyWarm(rooms, functools.partial(ask_bot, channels, owner_relay), legs,
                                   region_tag=region_tag(here.here) if several else "",
                                   caller_id=phone.daily_dialout_caller_id)
        daily = DailyTransfers(rooms, reads, coordination.key_holders, phone.transfer_targets, timeline,
                               warm=daily_warm, warm_unready=daily_relay.unready if daily_relay is not None else None,
                               caller_id=phone.daily_dialout_caller_id)
    handing = TransfersAnywhere(transfers, coordination, daily=daily)
    channels.methods[METHOD_CALL_TRANSFER] = bot_transfer(handing)
    carriers_share = max(1, math.floor(settings.key_session_share * settings.max_concurrent_sessions))
    return PhoneState(
        settings=phone,
        tokens=CallTokens(phone.token_key, region=settings.region),
        calls=PhoneCalls(sessions, channels, MediaLinks(), coordination.calls, owner_relay,
                         start_wait_seconds=settings.start_wait_seconds, timeline=timeline,
                         max_frames_per_second=phone.max_frames_per_second,
                         start_rate=coordination.start_rate(settings.start_rate_per_key, settings.start_burst_per_key),
                         standing_cap=StandingCap(coordination.key_sessions, phone.standing_calls(carriers_share),
                                                  record_seconds=settings.max_session_seconds + 60.0)),
        spent=coordination.spent,
        webhooks=coordination.webhooks,
        handed=coordination.held_places,
        transfers=transfers,
        handing=handing,
        sip=sip,
        twilio_warm=twilio_warm,
        telnyx_warm=telnyx_warm,
        plivo_warm=plivo_warm,
        daily_hooks=daily_hooks,
        daily_relay=daily_relay,
        daily_calltransfers=daily_calltransfers,
        dialers=dialers,
        no_dialer=no_dialer,
        metrics=PhoneMetrics(metrics.registry, metrics.provider),
        eval_tokens=EvalTokens(phone.token_key, coordination.spent, region=settings.region),
        owners=owners,
        turns=turns,
    )


def _dialer(env: Mapping[str, str], phone: PhoneSettings, twilio: TwilioCalls | None,
            coordination: Coordination, limits: CreateLimits | RegionPaces,
            regions: bool) -> tuple[TwilioDialer | None, str]:
    """Calls out through Twilio need its REST credentials, its auth token (Twilio signs the calls'
    callbacks with the account's auth token, whichever credential placed them) and an address of this
    dispatcher's own for the call's stream and callbacks (dispatcher/phone/access.py `carrier_base`)."""
    settings = dial_settings_from_env(env, "TWILIO")
    if twilio is None or phone.twilio_rest is None:
        return None, ("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or an API key: TWILIO_API_KEY_SID and "
                      "TWILIO_API_KEY_SECRET, with TWILIO_AUTH_TOKEN to check the calls' callbacks)")
    if not phone.twilio_auth_token:
        return None, "set TWILIO_AUTH_TOKEN: the calls' status callbacks are signed with it and checked"
    if not phone.public_url and not regions:
        return None, ("set PHONE_PUBLIC_URL to the https:// address Twilio reaches this dispatcher at: a call's "
                      "stream and callbacks go there, never to an address a request's Host header names")
    kept = coordination.session_values(hmac.new(phone.token_key, b"twilio calls kept", hashlib.sha256).digest())
    return TwilioDialer(settings, twilio, phone.twilio_rest.account_sid, limits, kept, coordination.key_holders), ""


def _telnyx_dialer(env: Mapping[str, str], phone: PhoneSettings, telnyx: TelnyxCalls | None,
                   coordination: Coordination, limits: CreateLimits | RegionPaces,
                   regions: bool) -> tuple[TelnyxDialer | None, str]:
    """Calls out through Telnyx's TeXML API need the dispatcher's Telnyx API key and Telnyx's public key
    (the calls' callbacks are Ed25519-signed and checked), the account and the TeXML application that
    places them, and an address of this dispatcher's own, as Twilio's calls do."""
    settings = dial_settings_from_env(env, "TELNYX")
    account, application = setting_text(env, "TELNYX_ACCOUNT_SID"), setting_text(env, "TELNYX_APPLICATION_SID")
    if account and not ACCOUNT_SID.fullmatch(account):  # it names the create's URL path
        raise SettingsError(f"TELNYX_ACCOUNT_SID={account[:40]!r} must be the Telnyx account's id, a UUID "
                            "(Mission Control Portal, account settings)")
    if telnyx is None:
        return None, ("set TELNYX_TRANSFER_API_KEY (the dispatcher's Telnyx API key) and TELNYX_PUBLIC_KEY (the "
                      "calls' callbacks are signed with Telnyx's key and checked)")
    if not account or not application:
        return None, ("set TELNYX_ACCOUNT_SID (the account's id) and TELNYX_APPLICATION_SID (the TeXML "
                      "application whose outbound voice profile places the calls)")
    if not phone.public_url and not regions:
        return None, ("set PHONE_PUBLIC_URL to the https:// address Telnyx reaches this dispatcher at: a call's "
                      "stream and callbacks go there, never to an address a request's Host header names")
    kept = coordination.session_values(hmac.new(phone.token_key, b"telnyx calls kept", hashlib.sha256).digest())
    return TelnyxDialer(settings, telnyx, account, limits, kept, coordination.key_holders,
                        application_sid=application), ""

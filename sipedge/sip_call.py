"""One SIP call in PJSUA2's terms. Its methods run on the SIP thread (sipedge/stack.py); what the
call flow must know (the media is up, the caller hung up) it is told through `CallEvents`, whose
methods hand over to the event loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import pjsua2 as pj

from sipedge.listening_media import tune_jitter_buffer
from sipedge.media_port import MediaPort, audio_format
from sipedge.pjsip_session import dialog_of
from sipedge.playout import Playout
from sipedge.reinvite import offer_refusal
from sipedge.rx_transport import came_over_tls
from sipedge.sip_end import SipEnd, disconnected
from sipedge.srtp_offer import offers_srtp
from sipedge.worker_place import FULL_HEADER, HEAD_END

# The media states in which the caller's audio reaches the edge: on hold (a=sendonly from the trunk) it still does.
_AUDIO_FLOWS = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)

log = logging.getLogger("sipedge")
# The `200 OK` names the call's session, so a caller (`voicefleet loadtest --transport sip`, a PBX's log)
# can find its timeline and report: the id alone opens nothing without the number's API key.
SESSION_HEADER = "X-Voicefleet-Session-Id"
MEDIA_REFUSED = 488  # Not Acceptable Here: the call goes on, its media where it was


def _has_body(message: str) -> bool:
    parts = HEAD_END.split(message, maxsplit=1)
    return len(parts) == 2 and parts[1].strip() != ""


class CallEvents(Protocol):
    def heard(self, pcm: bytes) -> None: ...  # from PJSIP's media thread

    def hung_up(self, status: int) -> None: ...  # the caller's BYE or CANCEL, or the call failed

    def pressed(self, digit: str) -> None: ...  # a key the caller pressed (RFC 2833 or SIP INFO)


class SipCall(pj.Call):  # type: ignore[misc]  # SWIG's class has no type information
    def __init__(self, account: pj.Account, call_id: int, on_end: Callable[[SipCall], None]) -> None:
        super().__init__(account, call_id)
        self.call_id = call_id  # PJSUA's slot, kept: getId() answers nothing useful once the call ended
        self.created = time.monotonic()
        self.playout = Playout()
        self.events: CallEvents | None = None
        # A transfer's call to a person: its stream keeps PJSIP's own jitter buffer (sipedge/listening_media.py).
        self.for_person = False
        self.admitted_from: str | None = None  # the trunk's source host, once the edge admitted the call
        self.credential: str | None = None  # the inbound digest username the front checked on its INVITE, if any
        self.dialog: int | None = None  # PJSIP's dialog of an inbound call, ended by it if unacknowledged (ack_wait.py)
        # Whether an in-dialog request's source (PJSIP's "host:port") is the call's trunk: PJSIP
        # matches dialogs by their identifiers alone, which the bot and the log both know.
        self.from_trunk: Callable[[str], bool] = lambda source: False
        # A request's source as "host:port": the trunk's, also when the edge's front relayed it.
        self.source_of: Callable[[pj.SipRxData], str] = lambda rdata: str(rdata.srcAddress)
        # Whether a request reached the edge over TLS (sipedge/stack.py: PJSIP's own, or the front's).
        self.came_secure: Callable[[pj.SipRxData], bool] = came_over_tls
        # Told of an in-dialog request from a source that is not the call's trunk, which the edge ignores.
        self.stranger_request: Callable[[str, str], None] = lambda source, method: None
        # The request PJSUA handles next (a NOTIFY, reported to onCallTransferStatus) came from a stranger.
        self._stranger_notify = False
        self.port: MediaPort | None = None
        # Set once PJSUA says the call is over: work queued for it since does nothing, since PJSUA may
        # already have given its slot to a new call.
        self.ended = False
        self.confirmed = False  # answered and ACKed
        self.edge_ended: SipEnd | None = None  # the edge's own end, once it hung up (a refusal, its BYE)
        self.on_sip_end: Callable[[SipEnd], None] | None = None  # told how the call ended, before `hung_up`
        self._on_end = on_end
        self._offer_checked = False  # a trunk's re-INVITE whose offer PJSUA passes on next
        self.over_tls = False  # PJSIP received the INVITE on a TLS connection (sipedge/rx_transport.py)
        self.srtp_mandatory = False  # PJSUA gave it to a number's account whose SRTP is mandatory
        self.keyed = False  # its INVITE offered SRTP, which PJSIP answers with SRTP or refuses
        self.keys_offered = False  # its INVITE's offer carries SDES keys, SRTP's or best effort beside RTP/AVP
        self.keys_doubt: str | None = None  # why PJSIP might key its offer beyond what those two read
        # The REFER's progress (sipedge/call_transfer.py): each status the transferee reports, and if it is final.
        self.on_transfer_status: Callable[[int, bool], None] | None = None
        self.on_refer_answer: Callable[[int], None] | None = None  # the REFER's own final response
        self.bridged_to: SipCall | None = None  # the other leg once its audio and this one's are bridged
        # A warm transfer's hold (sipedge/warm_transfer.py): a changed stream of the caller's joins the hold tones,
        # not the bot, so a re-INVITE cannot let the caller hear the bot brief the person; one of the person's
        # during the briefing joins the bot, both ways, as their first did. The caller's keys go nowhere meanwhile.
        self.on_hold: Callable[[pj.AudioMedia], None] | None = None

    def respond(self, status: int, retry_after: int | None = None, session_id: str | None = None,
                full: bool = False) -> None:
        """`full`: a refusal for want of a free slot, marked for the edge's front (worker_place.FULL_HEADER)."""
        if self.ended:
            return
        param = pj.CallOpParam(True)
        param.statusCode = status
        for name, value in (("Retry-After", retry_after), (SESSION_HEADER, session_id if status == 200 else None),
                            (FULL_HEADER, "1" if full and status >= 300 else None)):
            if value is not None:
                header = pj.SipHeader()
                header.hName, header.hValue = name, str(value)
                param.txOption.headers.append(header)
        if status >= 300:
            self.edge_ended = SipEnd("edge", "refused", status)
            self.hangup(param)  # a final refusal of an INVITE not yet answered
        else:
            self.answer(param)

    def end(self, why: SipEnd | None = None) -> None:
        """BYE once answered, else 503 to the ringing caller: the bot's side ended first (or `why`)."""
        if not self.ended:
            param = pj.CallOpParam(True)
            param.statusCode = 503
            self.edge_ended = why or (SipEnd("edge", "bye") if self.confirmed else SipEnd("edge", "refused", 503))
            self.hangup(param)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802  (PJSUA2's name)
        info = self.getInfo()
        self.confirmed = self.confirmed or info.state == pj.PJSIP_INV_STATE_CONFIRMED
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True
            if self.on_sip_end is not None:
                self.on_sip_end(self.edge_ended or disconnected(_received(prm.e), self.confirmed,
                                                                info.lastStatusCode, info.lastReason))
            if self.events is not None:
                self.events.hung_up(info.lastStatusCode)
            self._on_end(self)
            self.release()  # before PJSUA, once this returns, gives the call's slot to the next INVITE

    def release(self) -> None:
        """Destroys PJSUA2's object of the call now, on the SIP thread (PJSUA2 allows it inside the
        callback that tells the call ended). Left to Python, it would go wherever the last reference
        is dropped, often a flow on the event loop seconds later, by when PJSUA may have given the
        slot to a new call: PJSUA2's destructor unhooks whichever call has the slot and hangs it up,
        from a thread PJSIP does not know (pjlib aborts the process). What stays is this Python
        record of the call (`ended`, its slot, its trunk); PJSUA2's methods on it raise TypeError."""
        if getattr(self, "this", None) is not None:
            pj.Call.__swig_destroy__(self)
            self.this = None

    def onStreamPreCreate(self, prm: pj.OnStreamPreCreateParam) -> None:  # noqa: N802
        if not self.for_person:
            tune_jitter_buffer(prm.streamInfo)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        info = self.getInfo()  # kept: its media vector is freed with it
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in _AUDIO_FLOWS:
                audio = self.getAudioMedia(index)
                if self.bridged_to is not None:  # handed to a person: a changed stream joins theirs, not the bot's
                    self.bridged_to.join(audio)
                    continue
                if self.on_hold is not None:
                    self.on_hold(audio)
                    continue
                if self.port is None:
                    self.port = MediaPort(self._heard, self.playout)
                    self.port.createPort(f"bot{self.call_id}", audio_format())
                # Again after each re-INVITE: a changed stream (another codec) is a new port of the bridge.
                audio.startTransmit(self.port)
                self.port.startTransmit(audio)

    def bridge(self, other: SipCall) -> None:
        """This call's audio and `other`'s to each other in PJSUA's conference bridge, the bot's port out of
        both (on the SIP thread): the edge keeps both legs, a person talks with the caller."""
        self.bridged_to, other.bridged_to = other, self
        for leg in (self, other):
            if leg.port is not None:
                audio = leg.getAudioMedia(-1)
                audio.stopTransmit(leg.port)
                leg.port.stopTransmit(audio)
        other.join(self.getAudioMedia(-1))

    def join(self, audio: pj.AudioMedia) -> None:
        """`audio` (the other leg's) and this call's own, each to the other."""
        mine = self.getAudioMedia(-1)
        mine.startTransmit(audio)
        audio.startTransmit(mine)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        if self._stranger_notify:  # a forged sipfrag: a 200 would have the edge hang its caller up
            self._stranger_notify = False
            # Only its sipfrag is kept from the transfer: PJSIP's subscription has already applied its
            # Subscription-State, so a "terminated" ends it, the trunk's own NOTIFYs are then answered 481,
            # and the transfer ends refer_outcome_unknown (docs/sip.md). PJSUA2 cannot refuse it earlier.
            prm.cont = True
            return
        if self.on_transfer_status is not None:
            self.on_transfer_status(int(prm.statusCode), bool(prm.finalNotify))

    def onCallRxReinvite(self, prm: pj.OnCallRxReinviteParam) -> None:  # noqa: N802
        if not self.from_trunk(self.source_of(prm.rdata)):  # a stranger moving the call's media elsewhere
            prm.statusCode = MEDIA_REFUSED
        elif self.left_tls(prm.rdata):  # the answer would carry the call's SRTP keys in the clear
            log.warning("sipedge: a re-INVITE of a call over TLS came without TLS: refused 488, the call goes on")
            prm.statusCode = MEDIA_REFUSED
        elif self.keyed and prm.offer.wholeSdp.strip() and not offers_srtp(prm.offer.wholeSdp):
            log.warning("sipedge: a re-INVITE of a call with SRTP offered plain RTP: refused 488, the call goes on")
            prm.statusCode = MEDIA_REFUSED
        elif (refusal := offer_refusal(prm.offer.wholeSdp)) is not None:  # PJSIP's own answer would be 500
            prm.statusCode = refusal
        else:
            self._offer_checked = True  # PJSUA calls onCallRxOffer next, for this re-INVITE's offer

    def onCallRxOffer(self, prm: pj.OnCallRxOfferParam) -> None:  # noqa: N802
        # PJSUA2 tells no source here. A re-INVITE's offer was checked just before; any other (an
        # UPDATE's) could be anyone's who knows the dialog's ids: the media stays where it is.
        if not self._offer_checked:
            prm.statusCode = MEDIA_REFUSED
        self._offer_checked = False

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802
        # A re-INVITE without an offer: PJSIP answers it with the edge's own offer before any callback
        # can refuse it, and the sender's ACK would move the media. From a stranger, the call ends now
        # (anyone with the dialog's ids can end it with a BYE anyway; nobody may take it over).
        state = prm.e.body.tsxState
        if self.dialog is None and prm.e.type == pj.PJSIP_EVENT_TSX_STATE:  # the INVITE's 180, at the latest its 200
            self.dialog = dialog_of(state.tsx)
        if prm.e.type == pj.PJSIP_EVENT_TSX_STATE and state.type == pj.PJSIP_EVENT_RX_MSG:
            self._stranger_notify = self._notify_from_stranger(state)
        if (prm.e.type == pj.PJSIP_EVENT_TSX_STATE and state.tsx.role == pj.PJSIP_ROLE_UAC
                and state.tsx.method == "REFER" and state.tsx.statusCode >= 200 and self.on_refer_answer is not None):
            # The REFER's answer, which onCallTransferStatus does not tell apart from a NOTIFY's failure:
            # refused, the trunk calls nobody; accepted (202), the trunk is calling the person.
            self.on_refer_answer(int(state.tsx.statusCode))
            return
        if (prm.e.type != pj.PJSIP_EVENT_TSX_STATE or state.type != pj.PJSIP_EVENT_RX_MSG
                or state.tsx.role != pj.PJSIP_ROLE_UAS or state.tsx.method != "INVITE" or self.ended
                or self.getInfo().state != pj.PJSIP_INV_STATE_CONFIRMED):
            return
        # The re-INVITE itself: not the ACK of a refusal, which the transaction takes too, and which the
        # edge's front sends itself (hop by hop), without the lines that name the trunk and its hop. By the
        # method PJSIP parsed: the raw text may start with a space, or have a tab after the method.
        if _has_body(state.src.rdata.wholeMsg) or not _parsed_as(state.src.rdata, "INVITE"):
            return
        if not self.from_trunk(self.source_of(state.src.rdata)):
            log.warning("sipedge: a re-INVITE without an offer from %s, not the call's trunk: the call is ended",
                        self.source_of(state.src.rdata))
            self.end()
        elif self.left_tls(state.src.rdata):  # PJSIP's offer in its answer held the keys, sent in the clear
            log.warning("sipedge: a re-INVITE without an offer of a call over TLS came without TLS: the call, "
                        "whose SRTP keys went out in the clear, is ended")
            self.end()

    def _notify_from_stranger(self, state: pj.TsxStateEvent) -> bool:
        """Whether a received message is a NOTIFY from outside the call's trunk. PJSIP matches it to the
        call by the dialog's ids alone and its REFER subscription reports its sipfrag next: PJSUA calls this
        callback before the subscription's, for each message received in the dialog."""
        tsx = state.tsx
        if tsx.role != pj.PJSIP_ROLE_UAS or tsx.method != "NOTIFY" or tsx.state != pj.PJSIP_TSX_STATE_TRYING:
            return False
        source = self.source_of(state.src.rdata)
        if self.from_trunk(source):
            return False
        self.stranger_request(source, "NOTIFY")  # logged there, bounded as refusals are: a flood costs a few lines
        return True

    def left_tls(self, rdata: pj.SipRxData) -> bool:
        """Whether an in-dialog request of a call that came over TLS came over another transport."""
        return self.over_tls and not self.came_secure(rdata)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:  # noqa: N802
        prm.statusCode = 603  # a REFER would have the edge call anyone the sender names: never

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:  # noqa: N802
        prm.statusCode = 603  # the edge takes no call over from another dialog

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        if self.events is not None and self.on_hold is None:  # on hold, the bot is not the caller's to press at
            self.events.pressed(prm.digit)

    def _heard(self, pcm: bytes) -> None:
        if self.events is not None:
            self.events.heard(pcm)


def _parsed_as(rdata: pj.SipRxData, method: str) -> bool:
    """Whether PJSIP parsed a received message as a request of `method` (its info reads
    "Request msg INVITE/cseq=2 (rdata0x...)", pjsip_rx_data_get_info)."""
    return str(rdata.info).startswith(f"Request msg {method}/")


def _received(event: pj.SipEvent) -> str | None:
    """The request an event is about, as received (a caller's BYE or CANCEL), or None."""
    if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
        return str(event.body.tsxState.src.rdata.wholeMsg) or None
    return None

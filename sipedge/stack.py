"""PJSIP, through PJSUA2, on a thread of its own: SIP over UDP on the configured address, RTP on the
configured ports, G.711 μ-law and A-law only (any other offer is answered 488 by PJSIP's SDP
negotiation), no sound device (a null one clocks the conference bridge). PJSUA2 objects are touched
only on this thread: the event loop hands it work with `submit`. A trunk with a registrar gets an
account that registers there with its digest credential."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import queue
import statistics
import threading
import time
from collections.abc import Callable

import pjsua2 as pj

from sipedge.config import EdgeConfig, Trunk
from sipedge.listening_media import without_concealment
from sipedge.pjsip_log import PjsipLog
from sipedge.refusals import DEFAULT_RETRY_SECONDS
from sipedge.register_retry import RegisterRetry
from sipedge.registrations import Registrations
from sipedge.rx_transport import came_over_tls
from sipedge.secure_ciphers import forward_secret
from sipedge.secure_sip import SIGNALLING_ANY, SIGNALLING_TLS_HOP, secure_media, tls_transport
from sipedge.sip_call import SipCall
from sipedge.sip_end import EDGE_STOPPED, edge_hung_up
from sipedge.sip_wake import POLL_MS, SipWake
from sipedge.srtp_offer import keys_doubt, offers_keys, offers_srtp, unplayable_profile
from sipedge.unparsed_reply import DroppedAnswers
from sipedge.worker_place import (
    HEAD_END,
    Place,
    front_credential,
    front_hop_was_tls,
    place,
    true_source,
    without_token,
)

log = logging.getLogger("sipedge")

CODECS = ("PCMU/8000", "PCMA/8000")  # G.711 μ-law first, as carriers offer it
EVENT_POLL_MS = 10  # while stopping (the BYEs' answers), and always where wake-ups do not arrive
# A wake-up sent just before PJSIP's poll ends it within this, a loaded host's scheduling included; one
# that does not arrive leaves the poll to its end (POLL_MS, or a timer of PJSIP's: hence the median of 3).
WAKE_PROOF_MS = 20
WAKE_PROOF_TRIES = 3
PJSIP_LOG_LEVEL = 1  # errors only: its warnings come per INVITE (a scanner would write one per packet)
# PJSUA gives every INVITE its RTP and RTCP sockets before the edge sees it, and PJSIP's ioqueue
# (64 sockets in the pjsua2 wheel) keeps a closed socket's slot 0.5 s longer: an INVITE refused at
# once, thousands a second, used them all up. So a call holds its PJSUA slot at least
# REFUSAL_HOLD_SECONDS, and PJSUA answers 486 itself, before any socket, once its PJSUA_CALLS slots
# are taken: PJSUA_CALLS * 2 sockets live and as many closing at most (docs/sip.md#capacity).
PJSUA_CALLS = 4  # the wheel's PJSUA_MAX_CALLS: PJSUA takes no more whatever maxCalls says
PJSUA_ACCOUNTS = 8  # the wheel's PJSUA_MAX_ACC: the local one, registrars', outbound ones, SRTP numbers'
REFUSAL_HOLD_SECONDS = 0.5
Incoming = Callable[[SipCall, str, str], None]  # the call, its source address, the INVITE as received
Ended = Callable[[SipCall], None]
Unplayable = Callable[[str, str, str], None]  # the source address, the request URI, why


class _Account(pj.Account):  # type: ignore[misc]  # SWIG's class has no type information
    def __init__(self, stack: SipStack, srtp_mandatory: bool = False, registers_for: str | None = None,
                 retry: RegisterRetry | None = None) -> None:
        super().__init__()
        self._stack = stack
        self.srtp_mandatory = srtp_mandatory  # a number's own account: PJSIP's SRTP MANDATORY, over TLS only
        self._registers_for = registers_for  # the trunk whose registrar this account registers with
        self._retry = retry or RegisterRetry()  # its refusals in a row, for the edge's own retry of them

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802  (PJSUA2's name)
        self._stack.incoming(self, prm)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802  (PJSUA2's name)
        if self._registers_for is None:
            return
        code = int(prm.code)
        self._stack.registrations.answered(self._registers_for, code, str(prm.reason), int(prm.expiration))
        wait = self._retry.answered(code, str(prm.rdata.wholeMsg))
        if wait is not None:  # a refusal PJSUA would leave standing until the edge restarts (register_retry.py)
            log.warning("sipedge: trunk %s's registrar refused its REGISTER (%d %s): registering again in %.0f s",
                        self._registers_for, code, str(prm.reason)[:80], wait)
            self._register_in(wait)

    def register(self) -> None:
        """Sends the account's REGISTER, on the SIP thread. Where PJSUA raises instead and tells no answer, the
        registration reads `failed`, and the edge asks again unless the registrar cannot be used as written
        (register_retry.py). A failure PJSUA tells as an answer too (a name that does not resolve: 502) is
        left to that answer's handling."""
        trunk, told = self._registers_for, self._retry.generation
        assert trunk is not None, "only a registering account registers"
        try:
            self.setRegistration(True)
        except pj.Error as failed:
            if self._retry.generation != told:
                return
            wait = self._retry.not_sent(int(failed.status))
            self._stack.registrations.gave_up(trunk, int(failed.status), str(failed.reason), wait is not None)
            then = f"asking again in {wait:.0f} s" if wait is not None else "fix its registrar, then restart the edge"
            log.warning("sipedge: trunk %s: PJSUA sent no REGISTER to its registrar: %s (status %d); %s",
                        trunk, failed.reason, failed.status, then)
            if wait is not None:
                self._register_in(wait)

    def _register_in(self, wait: float) -> None:
        generation = self._retry.generation
        self._stack.submit_at(time.monotonic() + wait, lambda: self._register_again(generation))

    def _register_again(self, generation: int) -> None:
        if self._retry.due(generation):  # no answer since: nothing else registered it meanwhile
            self.register()


class _Log(pj.LogWriter):  # type: ignore[misc]
    def __init__(self, bounded: PjsipLog) -> None:
        super().__init__()
        self._bounded = bounded

    def write(self, entry: pj.LogEntry) -> None:
        self._bounded.write(entry.msg)


class SipStack:
    def __init__(self, config: EdgeConfig, on_incoming: Incoming, on_ended: Ended) -> None:
        self.config = config
        self.place: Place = place(config, config.worker)
        self._on_incoming = on_incoming
        self._on_ended = on_ended
        self.on_unplayable: Unplayable = lambda source, uri, why: log.warning(
            "sipedge: INVITE from %s to %r refused 480: %s", source, uri[:120], why)
        self.pjsip_log = PjsipLog()  # PJSIP's own entries: bounded, its periods ended with the refusals'
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._later: list[tuple[float, int, Callable[[], None]]] = []  # (when, order, work), a heap
        self._order = itertools.count()
        self._stopping = threading.Event()
        self.started = threading.Event()
        self.failed: str | None = None  # why PJSIP did not start
        self.calls: dict[int, SipCall] = {}
        self._stop_why = EDGE_STOPPED
        self._ended: list[SipCall] = []
        self._accounts: list[_Account] = []
        self.outbound_accounts: dict[str, pj.Account] = {}  # trunk name → the account its calls go out by
        self.registrations = Registrations()  # each registering trunk's, as its registrar last answered
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self._wake = SipWake(self.place.sip_host, self.place.sip_port)  # PJSIP's poll waits up to POLL_MS
        self._dropped: DroppedAnswers | None = None  # behind the front: what PJSIP drops unparsed is answered

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._work.put(work)
        if threading.get_ident() != self._thread.ident:  # the SIP thread does its work before it polls again
            self._wake.wake()

    def submit_at(self, when: float, work: Callable[[], None]) -> None:
        """`work` on the SIP thread once `time.monotonic()` reaches `when`; on the SIP thread only."""
        heapq.heappush(self._later, (when, next(self._order), work))

    def after_hold(self, call: SipCall, work: Callable[[], None]) -> None:
        """`work` that ends `call` (a refusal, a hang-up), run after PJSUA's callback has returned
        (PJSUA frees the INVITE it is handling if the call ends inside it) and once the call has
        held its slot REFUSAL_HOLD_SECONDS."""
        self.submit(lambda: self.submit_at(call.created + REFUSAL_HOLD_SECONDS, work))

    def stop(self, timeout: float = 10.0, why: str = EDGE_STOPPED) -> None:
        """Hangs up the calls still up, each told as the edge's own end for `why`, and ends the SIP thread."""
        self._stop_why = why
        self._stopping.set()
        self._wake.wake()
        self._thread.join(timeout)

    def outgoing(self, make: Callable[[Ended], SipCall]) -> SipCall:
        """A call the edge places, on the SIP thread: `make(on_end)` sends its INVITE."""
        call = make(self._ended.append)
        self.calls[call.call_id] = call
        return call

    def incoming(self, account: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        offer = HEAD_END.split(prm.rdata.wholeMsg, maxsplit=1)[-1]
        profile = unplayable_profile(offer)
        if profile is not None:  # no pj.Call for it: PJSIP 2.15.1 crashes on one (srtp_offer.py); PJSUA answers 480
            request_uri = (prm.rdata.wholeMsg.split(None, 2) + ["", ""])[1]
            self.on_unplayable(self.source_of(prm.rdata), request_uri,
                               f"the offer's audio profile {profile} is not RTP/AVP(F) or RTP/SAVP(F)")
            return
        call = SipCall(account, prm.callId, self._ended.append)
        call.source_of, call.came_secure = self.source_of, self.came_secure
        call.over_tls = self.came_secure(prm.rdata)
        call.credential = front_credential(prm.rdata.srcAddress, prm.rdata.wholeMsg, self.place.front)
        call.srtp_mandatory = getattr(account, "srtp_mandatory", False)
        call.keyed, call.keys_offered = offers_srtp(offer), offers_keys(offer)
        call.keys_doubt = keys_doubt(prm.rdata.wholeMsg)
        self.calls[prm.callId] = call
        try:
            self._on_incoming(call, self.source_of(prm.rdata), without_token(prm.rdata.wholeMsg))
        except Exception:  # a bug of the edge's: the trunk tries its next route rather than waiting
            log.exception("sipedge: an INVITE could not be handled")
            self.after_hold(call, lambda: call.respond(503, DEFAULT_RETRY_SECONDS))

    def source_of(self, rdata: pj.SipRxData) -> str:
        """Who sent a request: the trunk's address, also when the edge's front relayed it."""
        return true_source(rdata.srcAddress, rdata.wholeMsg, self.place.front)

    def came_secure(self, rdata: pj.SipRxData) -> bool:
        """Whether a request reached the edge over TLS: PJSIP's own TLS listener, or the front's (a worker's
        PJSIP hears the front over loopback UDP; the front says which hop the trunk used)."""
        if self.place.front is None:
            return came_over_tls(rdata)
        return front_hop_was_tls(rdata.srcAddress, rdata.wholeMsg, self.place.front)

    def _run(self) -> None:
        endpoint = pj.Endpoint()
        try:
            endpoint.libCreate()
            self._start(endpoint)
            self._prove_wake(endpoint)
        except pj.Error as exc:  # handed to the main thread, which exits with it
            tls = f", tls port {self.config.tls.port}" if self.config.tls is not None else ""
            self.failed = f"{exc.reason} ({exc.title}, SIP on udp {self.place.sip_host}:{self.place.sip_port}{tls})"
            self._wake.close()
            self.started.set()
            return
        self.started.set()
        try:
            while not self._stopping.is_set():
                endpoint.libHandleEvents(self._poll_ms())
                self._do_work()
                self._do_due()
                self._forget_ended()
            self._later.clear()
            # Each call through its own end, so that it is told as the edge's (PJSUA's hangupAllCalls goes round
            # SipCall.end: an answered call's end would read as the caller's BYE, sipedge/sip_end.py `disconnected`).
            for call in [call for call in self.calls.values() if not call.ended and call.edge_ended is None]:
                with contextlib.suppress(pj.Error):
                    call.end(edge_hung_up(call.confirmed, self._stop_why))
            endpoint.hangupAllCalls()  # any call PJSUA holds that the edge does not
            for _ in range(50):  # the BYEs' answers, briefly
                endpoint.libHandleEvents(EVENT_POLL_MS)
            self._forget_ended()
        finally:
            for call in self.calls.values():  # here, not wherever Python drops them after the library is gone
                if call.port is not None:
                    call.port.release()
                call.release()
            self.calls.clear()
            self._accounts.clear()
            endpoint.libDestroy()
            self._wake.close()
            if self._dropped is not None:
                self._dropped.close()

    def _prove_wake(self, endpoint: pj.Endpoint) -> None:
        """That a wake-up ends PJSIP's poll, which a host firewall's filter by source on the SIP port prevents,
        silently where it drops: else the SIP thread polls every EVENT_POLL_MS (`_poll_ms`)."""
        took: list[float] = []
        for _ in range(WAKE_PROOF_TRIES):
            endpoint.libHandleEvents(0)  # what is pending now: only the wake-up (or a timer) ends the next poll
            began = time.monotonic()
            self._wake.wake()
            if self._wake.failed is not None:  # refused as it was sent: said already
                return
            endpoint.libHandleEvents(POLL_MS)
            took.append((time.monotonic() - began) * 1000)
        if statistics.median(took) > WAKE_PROOF_MS:
            self._wake.fail(f"a wake-up sent to the SIP port did not end PJSIP's poll (it waited "
                            f"{statistics.median(took):.0f} ms of {POLL_MS}), so it does not arrive")

    def _start(self, endpoint: pj.Endpoint) -> None:
        config = pj.EpConfig()
        ua_config(config.uaConfig, self.max_calls())
        config.logConfig.level = config.logConfig.consoleLevel = PJSIP_LOG_LEVEL
        self._writer = _Log(self.pjsip_log)
        config.logConfig.writer = self._writer
        media = config.medConfig
        media.clockRate = media.sndClockRate = 8000
        media.channelCount = 1
        media.ecTailLen = 0  # the bot's audio is not played in a room: nothing to cancel
        media.noVad = True
        endpoint.libInit(config)
        if self.place.front is not None:  # the front waits for a worker's first answer, which PJSIP would never send
            self._dropped = DroppedAnswers(self.place.front.address)
        endpoint.audDevManager().setNullDev()
        transport = pj.TransportConfig()
        transport.boundAddress = self.place.sip_host
        # A worker's SIP stays on loopback behind the front; the edge alone names its public address.
        transport.publicAddress = self.config.advertised if self.place.front is None else self.place.sip_host
        transport.port = self.place.sip_port
        endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        if self.config.tls is not None and self.place.front is None:  # behind a front, Kamailio takes TLS
            ciphers = forward_secret(endpoint.utilSslGetAvailableCiphers())
            listener = tls_transport(self.config.tls, self.place.sip_host, ciphers, self.config.advertised)
            endpoint.transportCreate(pj.PJSIP_TRANSPORT_TLS, listener)
        endpoint.libStart()
        for codec in endpoint.codecEnum2():
            wanted = codec.codecId.rsplit("/", 1)[0] in CODECS
            endpoint.codecSetPriority(codec.codecId, 255 - CODECS.index(codec.codecId.rsplit("/", 1)[0])
                                      if wanted else 0)
        without_concealment(endpoint, CODECS)
        self._accounts.append(self._account(f"sip:edge@{self.place.sip_host}:{self.place.sip_port}", None))
        for trunk in self.config.trunks:
            if trunk.registrar is not None:
                self._registering(trunk, trunk.registrar)
            if trunk.termination_uri is not None:  # answers the trunk's digest challenge to an outbound INVITE
                account = self._account(f"sip:edge@{self.config.advertised}:{self.config.sip_port}", trunk,
                                        registers=False)
                self._accounts.append(account)
                self.outbound_accounts[trunk.name] = account
        for number in self._srtp_numbers():
            self._accounts.append(self._account(f"sip:{number}@{self.place.sip_host}", None, srtp_mandatory=True))
        tls = f", tls port {self.config.tls.port}" if self.config.tls is not None else ""
        log.info("sipedge: SIP on udp %s:%d%s, RTP from port %d", self.place.sip_host, self.place.sip_port, tls,
                 self.place.rtp_port)

    def _registering(self, trunk: Trunk, registrar: str) -> None:
        """`trunk`'s account with its registrar, registering. One PJSUA cannot make (the registrar's URI, or the
        account's own made from it, is not one PJSIP parses) reads `failed`; the edge runs on with its others."""
        try:
            account = self._account(f"sip:{trunk.digest_username}@{_host(registrar)}", trunk)
        except pj.Error as failed:
            log.warning("sipedge: trunk %s: PJSUA takes no account for registrar %s: %s (status %d); fix the "
                        "registrar in the edge's file, then restart the edge", trunk.name, registrar, failed.reason,
                        failed.status)
            self.registrations.gave_up(trunk.name, int(failed.status), str(failed.reason), False)
            return
        self._accounts.append(account)
        account.register()

    def _srtp_numbers(self) -> list[str]:
        """The numbers of trunks whose SRTP is mandatory: each gets an account of its own, which PJSUA
        picks for an INVITE to it whatever transport it came on (its user part outscores the local
        account, pjsua_acc_find_for_incoming), and on which PJSIP itself refuses a call that is not over
        TLS or whose offer it cannot key (488), the initial INVITE's and every re-INVITE's."""
        numbers = [n for t in self.config.trunks if t.srtp == "mandatory" for n in t.api_keys]
        others = 1 + sum((t.registrar is not None) + (t.termination_uri is not None) for t in self.config.trunks)
        if others + len(numbers) > PJSUA_ACCOUNTS:
            raise pj.Error(0, "too many accounts", f"PJSUA keeps {PJSUA_ACCOUNTS} accounts and the edge needs "
                           f"{others + len(numbers)}: one for each number of a trunk with srtp = \"mandatory\" "
                           f"({len(numbers)}) and {others} others; move numbers to another edge", "", 0)
        return numbers

    def _account(self, uri: str, trunk: Trunk | None, registers: bool = True,
                 srtp_mandatory: bool = False) -> _Account:
        config = pj.AccountConfig()
        config.idUri = uri
        rtp = config.mediaConfig.transportConfig
        rtp.boundAddress = self.config.sip_address
        rtp.publicAddress = self.config.advertised  # what SDP names: the trunk sends RTP there
        rtp.port = self.place.rtp_port
        rtp.portRange = self.place.rtp_port_count
        # Inbound calls share the local account, SRTP optional there when any trunk wants it, except the
        # numbers of trunks whose SRTP is mandatory: theirs is PJSIP's MANDATORY over TLS (_srtp_numbers).
        # A worker hears every request over loopback UDP from the front, so PJSIP's own TLS check would refuse
        # them all: there the edge's check (srtp_offer.py, by the hop the front reports) stands alone.
        signalling = SIGNALLING_TLS_HOP if self.place.front is None else SIGNALLING_ANY
        if srtp_mandatory:
            secure_media(config.mediaConfig, "mandatory", signalling)
        elif trunk is not None:
            secure_media(config.mediaConfig, trunk.srtp, SIGNALLING_TLS_HOP)
        else:
            wanted = any(t.srtp != "off" for t in self.config.trunks)
            secure_media(config.mediaConfig, "optional" if wanted else "off", SIGNALLING_ANY)
        if trunk is not None and registers and trunk.registrar is not None:
            config.regConfig.registrarUri = trunk.registrar
            # PJSUA waits 300 s after a refused REGISTER before trying again: two 503s would leave the trunk's
            # inbound calls cut for five minutes, past its alarm. A registrar's blip costs half a minute (the
            # trunk's registrar_retry_seconds), give or take a third: PJSUA's own 10 s at 30 s, spreading edges'
            # retries, and never more than the interval (PJSUA draws a shorter one from 0 to 10 s).
            config.regConfig.retryIntervalSec = trunk.registrar_retry_seconds
            config.regConfig.firstRetryIntervalSec = trunk.registrar_retry_seconds
            config.regConfig.randomRetryIntervalSec = trunk.registrar_retry_seconds // 3
            # Registered by the edge (_Account.register), where a REGISTER PJSUA gives up on before sending (a
            # registrar it has no transport or Contact for) raises: on add, PJSUA logs it and reports nothing, ever.
            config.regConfig.registerOnAdd = False
        if trunk is not None and not registers and self.place.front is not None:
            # A worker's own calls leave through its front (the only way off loopback), which lets them go to
            # the trunk's termination alone (sipedge/front_config.py).
            config.sipConfig.proxies.append(f"sip:{self.place.front.address};lr")
        if trunk is not None and trunk.digest_password is not None:
            config.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", trunk.digest_username, 0, trunk.digest_password))
        registers_for = trunk.name if trunk is not None and registers and trunk.registrar is not None else None
        account = _Account(self, srtp_mandatory, registers_for,
                           RegisterRetry(trunk.registrar_retry_seconds) if trunk is not None else None)
        account.create(config, trunk is None and not srtp_mandatory)  # the local account is the default one
        return account

    def max_calls(self) -> int:
        """Each call takes two RTP ports (RTP and RTCP) of the configured range."""
        return min(PJSUA_CALLS, self.place.rtp_port_count // 2)

    def _poll_ms(self) -> int:
        """How long PJSIP's poll may wait: POLL_MS (work handed over wakes it; EVENT_POLL_MS where wake-ups
        do not arrive), less while work is queued or the edge's own next timed work (submit_at) comes sooner."""
        if not self._work.empty():
            return 0
        longest = POLL_MS if self._wake.failed is None else EVENT_POLL_MS
        if not self._later:
            return longest
        return max(0, min(longest, math.ceil((self._later[0][0] - time.monotonic()) * 1000)))

    def _do_work(self) -> None:
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            run_work(work)

    def _do_due(self) -> None:
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:
            run_work(heapq.heappop(self._later)[2])

    def _forget_ended(self) -> None:
        """Drops the calls that ended (PJSUA2's call objects already went in their last callback) and
        their media ports, once their callbacks have returned."""
        while self._ended:
            call = self._ended.pop()
            self._on_ended(call)
            if call.port is not None:
                call.port.release()
            call.port = None
            self.calls.pop(call.call_id, None)


def ua_config(ua: pj.UaConfig, max_calls: int) -> None:
    """PJSUA's user agent as the edge runs it. PJSUA answers an unsolicited NOTIFY outside any dialog (a
    voicemail summary, `Event: message-summary`) 200 from anyone by default; the edge subscribes to none,
    so PJSIP leaves it unanswered, as every other request outside a dialog but an INVITE or OPTIONS."""
    ua.threadCnt = 0  # SIP events run on the SIP thread, in libHandleEvents
    ua.mainThreadOnly = False
    ua.maxCalls = max_calls
    ua.mwiUnsolicitedEnabled = False


def run_work(work: Callable[[], None]) -> None:
    """One piece of work on the SIP thread; its failure is logged, and the thread goes on with the
    rest (a bug of one call's must not leave every later INVITE unanswered)."""
    try:
        work()
    except pj.Error as exc:  # a call already gone: nothing to do
        log.info("sipedge: %s", exc.info())
    except Exception:
        log.exception("sipedge: work on the SIP thread failed")


def _host(registrar: str) -> str:
    return registrar.split(":", 1)[-1].split(";", 1)[0]

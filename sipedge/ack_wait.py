"""An answered call that no ACK confirmed within ACK_WAIT_SECONDS is ended at once. Anyone can send UDP with a
trunk's source address: such an INVITE, to a number the trunk serves, is taken as the trunk's call, starts a
session and its bot and is answered, but its `200 OK` goes to the real trunk, which never acknowledges a call
it did not make. Left to PJSIP, the call held its slot and its bot about 64 s (the 200 sent again for 32 s,
then a BYE nobody answers for 32 s more). A real trunk acknowledges within a round trip, and an ACK that was
lost is sent again for each retransmitted 200 (PJSIP's, at 0.5, 1.5, 3.5 and 7.5 s).

Ended, the call's session is told `edge`, `failed`, 408 with the edge's reason (its bot stops), PJSIP's session
is terminated so that PJSUA's slot is free at once (sipedge/pjsip_session.py), the trunk gets the edge's BYE,
and the source is counted and logged as refusals are (sipedge/refusal_log.py)."""

from __future__ import annotations

from sipedge.pjsip_session import terminate
from sipedge.sip_call import SipCall
from sipedge.sip_end import SipEnd

# The 200's 4th retransmission goes at 7.5 s: its ACK has 1.5 s more, for a slow path and a busy host. A real
# trunk's call is cut only if its ACKs to the 200 and to each of 4 retransmissions were all lost.
ACK_WAIT_SECONDS = 9.0
NO_ACK = 408  # Request Timeout: PJSIP's own status for a 200 whose retransmissions ended without an ACK


def no_ack() -> SipEnd:
    return SipEnd("edge", "failed", NO_ACK, f"no ACK within {ACK_WAIT_SECONDS:g} s of the edge's 200 OK")


def end_unacknowledged(call: SipCall) -> bool:
    """On the SIP thread, ACK_WAIT_SECONDS after the call's 200 OK: ends the call unless an ACK confirmed it (or it
    ended meanwhile); whether it did. PJSUA tells the end as any other (SipCall.onCallState), as `no_ack()`."""
    if call.ended or call.confirmed:
        return False
    call.edge_ended = no_ack()
    if call.dialog is None or not terminate(call.dialog, NO_ACK):
        # Not expected (the INVITE's 180 and 200 each tell its dialog: SipCall.onCallTsxState). PJSUA's own hang-up
        # still stops the bot and frees the edge's count of the call at once; PJSUA's slot waits for the BYE's answer.
        call.end(call.edge_ended)
    return True

"""An outbound call in PJSUA2's terms: the INVITE through a trunk's termination URI, from the trunk's
account (whose digest credential PJSIP uses to answer a 401/407 challenge by itself), and what the
far end says back. Runs on the SIP thread (sipedge/stack.py); the call's flow hears of the answer
through `OutboundEvents`, whose methods hand over to the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pjsua2 as pj

from sipedge.config import Trunk
from sipedge.sip_call import CallEvents, SipCall
from sipedge.sip_end import SipEnd
from sipedge.worker_place import TOKEN_HEADER


class OutboundEvents(CallEvents, Protocol):
    def picked_up(self) -> None: ...  # the far end answered (200 OK, ACKed)


class OutboundSipCall(SipCall):
    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802  (PJSUA2's name)
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.events is not None:
            self.events.picked_up()  # type: ignore[attr-defined]  # an outbound call's events
        super().onCallState(prm)


def target_uri(trunk: Trunk, number: str) -> str:
    """`sip:+14155550100@trunk.example.com`: the number at the trunk's termination URI's host."""
    assert trunk.termination_uri is not None
    scheme, rest = trunk.termination_uri.split(":", 1)
    host = rest.split("@", 1)[-1]  # a URI that names a user already: its host
    return f"{scheme}:{number}@{host}"


def place(account: pj.Account, trunk: Trunk, to: str, caller_id: str, address: str,
          on_end: Callable[[SipCall], None], events: OutboundEvents, call_token: str | None = None,
          for_person: bool = False, on_sip_end: Callable[[SipEnd], None] | None = None) -> OutboundSipCall:
    """Sends the INVITE (on the SIP thread); `pj.Error` if PJSIP refused to send it. A worker's carries its
    calls' token (`call_token`, never one the front sends), without which the front relays no INVITE from a
    worker's port (whoever bound a dead worker's port cannot know it); the front takes it off before the trunk.
    A call `for_person` (a transfer's) keeps PJSIP's own jitter buffer, set before the answer creates its stream."""
    call = OutboundSipCall(account, pj.PJSUA_INVALID_ID, on_end)
    call.events = events
    call.on_sip_end = on_sip_end  # set before the INVITE goes: PJSUA may end the call inside makeCall
    call.for_person = for_person
    # An in-dialog request (a re-INVITE moving the media) is taken from the trunk's own addresses only.
    far_host = _host_of(target_uri(trunk, to).split("@", 1)[-1])
    call.from_trunk = lambda source: _host_of(source) == far_host
    param = pj.CallOpParam(True)
    param.txOption.localUri = f"<sip:{caller_id}@{address}>"  # From: the number the call comes from
    if call_token is not None:
        header = pj.SipHeader()
        header.hName, header.hValue = TOKEN_HEADER, call_token
        param.txOption.headers.append(header)  # kept on the INVITE PJSIP sends again with the digest
    call.makeCall(target_uri(trunk, to), param)
    call.call_id = call.getId()
    return call


def _host_of(address: str) -> str:
    """`127.0.0.1` of `127.0.0.1:5060`, `::1` of `[::1]:5060`, a name of `name;transport=udp`."""
    host = address.split(";", 1)[0]
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

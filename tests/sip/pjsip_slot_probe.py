"""`python -m tests.sip.pjsip_slot_probe SIP_PORT RTP_PORT`: the edge's SIP stack (sipedge/stack.py, a real PJSUA2
endpoint on its SIP thread) takes raw INVITEs, and this thread keeps each call's object past its end,
as a call's flow does on the event loop. Once PJSUA gives an ended call's slot to a new INVITE, the
ended call's object is dropped here; then the new call is refused 486. Prints one JSON line: the
slot both calls had, whether the stack heard the new call end, and the new call's final answers. A
process of its own: PJSUA's library is one per process."""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable

from sipedge.config import EdgeConfig, Trunk
from sipedge.sip_call import SipCall
from sipedge.stack import PJSUA_CALLS, SipStack
from tests.sip.raw_sip import RawSip, status_of

NUMBER = "+14155550199"
WAIT_SECONDS = 5.0


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"pjsip_slot_probe: no {what} within {WAIT_SECONDS:g} s")
        time.sleep(0.02)


def main(port: int, rtp_port: int) -> None:
    config = EdgeConfig("http://127.0.0.1:9", "127.0.0.1", port, rtp_port, 2 * PJSUA_CALLS, 30.0,
                        (Trunk("loopback", (), {}),))
    incoming: list[SipCall] = []  # every call, kept here as a call's flow keeps it
    ended: list[SipCall] = []
    lock = threading.Lock()

    def on_incoming(call: SipCall, source: str, message: str) -> None:
        with lock:
            incoming.append(call)

    def on_ended(call: SipCall) -> None:
        with lock:
            ended.append(call)

    stack = SipStack(config, on_incoming, on_ended)
    stack.start()
    stack.started.wait()
    assert stack.failed is None, stack.failed
    trunk = RawSip("127.0.0.1", port)

    def refuse(call: SipCall) -> None:
        stack.after_hold(call, lambda: call.respond(486))

    def ring() -> tuple[SipCall, str]:
        seen = len(incoming)
        call_id = trunk.invite(NUMBER).call_id
        _until(lambda: len(incoming) > seen, "INVITE taken")
        return incoming[seen], call_id

    def first_call() -> int:
        """The first call's slot, once it ended; its object stays in `incoming` and `ended`."""
        first, _ = ring()
        refuse(first)
        _until(lambda: first in ended, "end of the first call")
        return first.call_id

    slot = first_call()
    for _ in range(PJSUA_CALLS):  # PJSUA hands its slots round: one INVITE of these gets the first's
        later, later_id = ring()
        if later.call_id == slot:
            break
        refuse(later)
        _until(lambda: later in ended, "end of a call")  # noqa: B023  (waited for at once)
    else:
        raise SystemExit("pjsip_slot_probe: PJSUA never gave the first call's slot again")
    trunk.answers(0.5)  # the answers so far, read and dropped
    with lock:  # the ended call's object goes, on this thread (the event loop's, in the edge)
        dropped = [incoming.pop(0), ended.pop(0)]
    assert dropped[0] is dropped[1] and dropped[0].call_id == slot
    dropped.clear()
    gc.collect()
    refuse(later)
    ended_seen = True
    try:
        _until(lambda: later in ended, "end of the call in the reused slot")
    except SystemExit:
        ended_seen = False
    dialog = re.compile(rf"^Call-ID: *{re.escape(later_id)}\r?$", re.MULTILINE | re.IGNORECASE)
    finals = sorted({status_of(a) for a in trunk.answers(1.5) if dialog.search(a) and status_of(a) >= 200})
    print(json.dumps({"slot": slot, "reused_slot": later.call_id, "ended_seen": ended_seen, "finals": finals}),
          flush=True)
    os._exit(0)  # PJSUA's teardown is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

"""`python -m tests.sip.pjsip_wake_probe SIP_PORT RTP_PORT POLL_MS`: the edge's SIP stack (sipedge/stack.py, a
real PJSUA2 endpoint on its SIP thread) with PJSIP's poll bounded by POLL_MS, left idle for a second,
then handed work from this thread. Prints one JSON line: how many times the SIP thread came out of its
poll in that idle second, and the seconds the work waited to run. A process of its own: PJSUA's
library is one per process."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from sipedge import stack as sip_stack
from sipedge.config import EdgeConfig, Trunk

IDLE_SECONDS = 1.0
WAIT_SECONDS = 10.0


def main(port: int, rtp_port: int, poll_ms: int) -> None:
    setattr(sip_stack, "POLL_MS", poll_ms)  # noqa: B010  (the stack reads its own name for it)
    config = EdgeConfig("http://127.0.0.1:9", "127.0.0.1", port, rtp_port, 2 * sip_stack.PJSUA_CALLS, 30.0,
                        (Trunk("loopback", (), {}),))
    stack = sip_stack.SipStack(config, lambda call, source, message: None, lambda call: None)
    rounds = [0]
    do_work = stack._do_work

    def counted() -> None:  # once per poll of PJSIP's: the SIP thread's round
        rounds[0] += 1
        do_work()

    stack._do_work = counted  # type: ignore[method-assign]
    stack.start()
    stack.started.wait()
    assert stack.failed is None, stack.failed
    time.sleep(0.2)  # past PJSIP's start-up work
    before = rounds[0]
    time.sleep(IDLE_SECONDS)
    idle_rounds = rounds[0] - before
    ran = threading.Event()
    handed = time.monotonic()
    stack.submit(ran.set)
    ran_after = time.monotonic() - handed if ran.wait(WAIT_SECONDS) else None
    print(json.dumps({"idle_rounds": idle_rounds, "work_ran_after_s": ran_after}), flush=True)
    os._exit(0)  # PJSUA's teardown is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))

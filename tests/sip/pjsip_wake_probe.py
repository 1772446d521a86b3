"""`python -m tests.sip.pjsip_wake_probe SIP_PORT RTP_PORT POLL_MS [WAKE]`: the edge's SIP stack
(sipedge/stack.py, a real PJSUA2 endpoint on its SIP thread) with PJSIP's poll bounded by POLL_MS, left
idle for a second, then handed work from this thread, SUBMITS times. WAKE: `sent` (as the edge sends
it), `refused` (its sendto fails EPERM, as under a firewall's reject rule), `dropped` (it goes to another
port, where nothing listens: as under a firewall's drop rule, nothing comes back). Prints one JSON line:
how many times the SIP thread came out of its poll in that idle second, the seconds the first work
waited to run, the median milliseconds they all waited, and why the stack gave up its wake-ups (or
null). Its log goes to stderr. A process of its own: PJSUA's library is one per process."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import statistics
import sys
import threading
import time

from sipedge import stack as sip_stack
from sipedge.config import EdgeConfig, Trunk

IDLE_SECONDS = 1.0
WAIT_SECONDS = 10.0
SUBMITS = 10
SUBMIT_SPACING_SECONDS = 0.037  # no multiple of any poll's length: the submits fall across the poll


class _Refused(socket.socket):
    def sendto(self, *args: object) -> int:  # as the kernel does under a reject rule
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))


def main(port: int, rtp_port: int, poll_ms: int, wake: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    setattr(sip_stack, "POLL_MS", poll_ms)  # noqa: B010  (the stack reads its own name for it)
    config = EdgeConfig("http://127.0.0.1:9", "127.0.0.1", port, rtp_port, 2 * sip_stack.PJSUA_CALLS, 30.0,
                        (Trunk("loopback", (), {}),))
    stack = sip_stack.SipStack(config, lambda call, source, message: None, lambda call: None)
    if wake == "refused":
        stack._wake._socket = _Refused(socket.AF_INET, socket.SOCK_DGRAM)
    elif wake == "dropped":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere:
            elsewhere.bind(("127.0.0.1", 0))
            stack._wake._target = elsewhere.getsockname()  # closed at once: nothing listens there
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
    waits: list[float | None] = []
    for _ in range(SUBMITS):
        ran = threading.Event()
        handed = time.monotonic()
        stack.submit(ran.set)
        waits.append(time.monotonic() - handed if ran.wait(WAIT_SECONDS) else None)
        time.sleep(SUBMIT_SPACING_SECONDS)
    ran_ms = [wait * 1000 for wait in waits if wait is not None]
    print(json.dumps({"idle_rounds": idle_rounds, "work_ran_after_s": waits[0],
                      "wait_ms_median": statistics.median(ran_ms) if len(ran_ms) == SUBMITS else None,
                      "wake_failed": stack._wake.failed}), flush=True)
    os._exit(0)  # PJSUA's teardown is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "sent")

"""`python -m tests.sip.pjsip_clock_probe SIP_PORT RTP_PORT`: the edge's SIP stack (sipedge/stack.py, a real
PJSUA2 endpoint with its null sound device) and the edge's media port in its conference bridge, the null
device's capture sent to the port and the port's audio to its playback, so PJSIP's media clock calls the
port both ways every 20 ms, as in a call. The port runs PORT_SECONDS, is taken out, and a second one runs as
long after IDLE_SECONDS without any (PJSUA closes its sound device, and so ends the clock thread, after an
idle second). Prints one JSON line: the callbacks, how many of them found a Python thread state the clock
thread had not had in an earlier callback (a `threading.local` mark is gone with its state), how many clock
threads called, and the interpreter's thread states counted after each port. Its log goes to stderr. A
process of its own: PJSUA's library is one per process."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

import pjsua2 as pj

from sipedge import stack as sip_stack
from sipedge.config import EdgeConfig, Trunk
from sipedge.media_port import MediaPort, audio_format
from sipedge.playout import Playout
from tests.sip.foreign_thread import thread_states

PORT_SECONDS = 1.0
IDLE_SECONDS = 2.0  # past PJSUA's sound device auto-close (1 s), which ends its clock thread
_mark = threading.local()
counts = {"callbacks": 0, "new_states": 0}
clock_threads: set[int] = set()


def _note() -> None:
    counts["callbacks"] += 1
    clock_threads.add(threading.get_native_id())
    if not getattr(_mark, "seen", False):
        counts["new_states"] += 1
        _mark.seen = True


class CountedPort(MediaPort):
    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        _note()
        super().onFrameReceived(frame)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        _note()
        super().onFrameRequested(frame)


def on_sip_thread(stack: sip_stack.SipStack, work: Callable[[], object]) -> None:
    done = threading.Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    stack.submit(run)
    assert done.wait(10), "the SIP thread did not run the work"


def plug(name: str, ports: list[CountedPort]) -> None:
    """On the SIP thread: a port in the bridge, the null device's capture to it and its audio to the playback."""
    media = CountedPort(lambda pcm: None, Playout())
    media.createPort(name, audio_format())
    devices = pj.Endpoint.instance().audDevManager()
    devices.getCaptureDevMedia().startTransmit(media)
    media.startTransmit(devices.getPlaybackDevMedia())
    ports.append(media)


def main(port: int, rtp_port: int) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    config = EdgeConfig("http://127.0.0.1:9", "127.0.0.1", port, rtp_port, 2 * sip_stack.PJSUA_CALLS, 30.0,
                        (Trunk("loopback", (), {}),))
    stack = sip_stack.SipStack(config, lambda call, source, message: None, lambda call: None)
    stack.start()
    stack.started.wait()
    assert stack.failed is None, stack.failed
    ports: list[CountedPort] = []
    states: list[int] = []
    for round_ in range(2):
        on_sip_thread(stack, lambda: plug(f"probe{len(ports)}", ports))
        time.sleep(PORT_SECONDS)
        on_sip_thread(stack, ports[-1].release)
        states.append(len(thread_states()))
        if round_ == 0:
            time.sleep(IDLE_SECONDS)
    print(json.dumps({**counts, "clock_threads": len(clock_threads), "thread_states": states}), flush=True)
    os._exit(0)  # PJSUA's teardown is not what is probed here


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

"""One SIP call placed through PJSUA2, in a process of its own (PJSUA2 holds one library a process):
`python -m voicefleet.loadtest.sip_agent sip:NUMBER@HOST:PORT`. It INVITEs the URI offering G.711
only, plays what it is given as the call's RTP at PJSIP's media clock (a null sound device clocks
the conference bridge) and hands back every 20 ms frame it hears; keys go out as RFC 4733 events.

Its parent (sip_line.py) speaks JSON lines. In, on stdin: `{"event": "media", "media": {"payload":
base64}}` (20 ms of 16-bit PCM at 8 kHz), `{"event": "dtmf", "digit": "1"}`, `{"event": "bye"}` (EOF
too). Out, on stdout: `answered` (with the `session_id` the edge's 200 OK names), `media` (a frame heard),
`refused` (the final answer to the INVITE: `status`, `reason`), `ended` (`status`, `reason`)."""

from __future__ import annotations

import argparse
import base64
import json
import queue
import random
import re
import socket
import sys
import threading
import time
from typing import Any

import pjsua2 as pj

from voicefleet.loadtest.sip_uri import SESSION_HEADER, SipUri, sip_uri

RATE = 8000
FRAME_BYTES = 320  # 20 ms of 16-bit PCM at 8 kHz
FRAME_USEC = 20_000
MAX_QUEUED = 250  # 5 s of the caller's audio: its parent sends it in real time
EVENT_POLL_MS = 10
CODECS = {"PCMU/8000": 255, "PCMA/8000": 254}  # G.711 only, as a trunk offers it
RTP_PORTS = 64  # from a random even base, so that many callers on one machine seldom try the same ports
_SESSION = re.compile(rf"^{SESSION_HEADER}:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_RETRY_AFTER = re.compile(r"^Retry-After:\s*([0-9]{1,6})\b", re.IGNORECASE | re.MULTILINE)
_out = threading.Lock()


def say(event: str, **fields: Any) -> None:
    """A line to the parent, from any thread (PJSIP's media clock writes the frames heard)."""
    line = json.dumps({"event": event, **fields})
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Line(pj.AudioMediaPort):  # type: ignore[misc]  # SWIG's class has no type information
    """The call's audio between PJSIP's bridge and the parent, called on PJSIP's media clock."""

    def __init__(self) -> None:
        super().__init__()
        self.speech: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802  (PJSUA2's name)
        if frame.type == pj.PJMEDIA_TYPE_AUDIO and frame.size:
            say("media", media={"payload": base64.b64encode(bytes(frame.buf)).decode()})

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        try:
            pcm = self.speech.get_nowait()
        except queue.Empty:
            pcm = bytes(FRAME_BYTES)
        frame.type = pj.PJMEDIA_TYPE_AUDIO
        frame.buf = pj.ByteVector(pcm.ljust(FRAME_BYTES, b"\0")[:FRAME_BYTES])
        frame.size = FRAME_BYTES


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.line: Line | None = None
        self.session_id: str | None = None
        self.answered = False
        self.over = threading.Event()

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        received = _received(prm.e) or ""
        if found := _SESSION.search(received):
            self.session_id = found.group(1)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.answered:
            self.answered = True
            say("answered", session_id=self.session_id)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            retry = _RETRY_AFTER.search(received)
            say("ended" if self.answered else "refused", status=info.lastStatusCode, reason=info.lastReason,
                retry_after=int(retry.group(1)) if retry else None)
            self.over.set()

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(index)
                if self.line is None:
                    self.line = Line()
                    fmt = pj.MediaFormatAudio()
                    fmt.type, fmt.clockRate, fmt.channelCount = pj.PJMEDIA_TYPE_AUDIO, RATE, 1
                    fmt.bitsPerSample, fmt.frameTimeUsec = 16, FRAME_USEC
                    self.line.createPort("caller", fmt)
                audio.startTransmit(self.line)
                self.line.startTransmit(audio)


def _received(event: pj.SipEvent) -> str | None:
    if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
        return str(event.body.tsxState.src.rdata.wholeMsg) or None
    return None


def local_address(target: SipUri) -> str:
    """This machine's address toward the edge (loopback for a local one): SIP's Via and the SDP name it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target.host, target.port))
        return str(probe.getsockname()[0])


def _read_stdin(commands: queue.SimpleQueue[dict[str, Any] | None]) -> None:
    for raw in sys.stdin:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if isinstance(message, dict):
            commands.put(message)
    commands.put(None)  # EOF: the parent is gone or hung up


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m voicefleet.loadtest.sip_agent")
    parser.add_argument("uri")
    parser.add_argument("--answer-seconds", type=float, default=180.0)
    args = parser.parse_args()
    target = sip_uri(args.uri)
    address = local_address(target)
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0  # events polled here: every PJSUA2 call stays on this thread
    config.uaConfig.mainThreadOnly = False
    config.logConfig.level = config.logConfig.consoleLevel = 1
    config.medConfig.noVad = True
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.boundAddress = transport.publicAddress = address
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    for codec in endpoint.codecEnum2():
        endpoint.codecSetPriority(codec.codecId, CODECS.get(codec.codecId.rsplit("/", 1)[0], 0))  # "PCMU/8000/1"
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:voicefleet-caller@{address}"
    media = account_config.mediaConfig.transportConfig
    media.boundAddress = media.publicAddress = address
    media.port, media.portRange = random.randrange(20000, 60000, 2), RTP_PORTS  # noqa: S311  (no secret)
    account = pj.Account()
    account.create(account_config)
    call = Call(account)
    commands: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    threading.Thread(target=_read_stdin, args=(commands,), daemon=True).start()
    try:
        call.makeCall(target.uri, pj.CallOpParam(True))
        _serve(endpoint, call, commands, args.answer_seconds)
    except pj.Error as error:
        say("refused", status=0, reason=f"PJSIP: {error.info()}")
    finally:
        endpoint.libDestroy()


def _serve(endpoint: pj.Endpoint, call: Call, commands: queue.SimpleQueue[dict[str, Any] | None],
           answer_seconds: float) -> None:
    """PJSIP's events and the parent's commands until the call is over."""
    give_up = time.monotonic() + answer_seconds
    hanging_up = False
    while not call.over.is_set():
        endpoint.libHandleEvents(EVENT_POLL_MS)
        if not call.answered and not hanging_up and time.monotonic() > give_up:
            hanging_up = _hang_up(call)  # CANCEL: no answer within the wait
        while not commands.empty() and not call.over.is_set():
            command = commands.get_nowait()
            event = None if command is None else command.get("event")
            if event == "media" and call.line is not None and call.line.speech.qsize() < MAX_QUEUED:
                call.line.speech.put(_payload(command))
            elif event == "dtmf" and call.answered:
                call.dialDtmf(str(command.get("digit", "")) if command else "")  # RFC 4733 events
            elif (command is None or event == "bye") and not hanging_up:
                hanging_up = _hang_up(call)


def _payload(command: dict[str, Any] | None) -> bytes:
    media = command.get("media") if command else None
    return base64.b64decode(str(media.get("payload", ""))) if isinstance(media, dict) else b""


def _hang_up(call: Call) -> bool:
    """BYE once answered, CANCEL while it rings."""
    try:
        call.hangup(pj.CallOpParam(True))
    except pj.Error:  # already ending
        pass
    return True


if __name__ == "__main__":
    main()

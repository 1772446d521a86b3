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
import contextlib
import json
import os
import queue
import random
import re
import socket
import sys
import threading
import time
from typing import Any

import pjsua2 as pj

from voicefleet.loadtest.latest_frames import LatestFrames
from voicefleet.loadtest.sip_eval_token import ENV
from voicefleet.loadtest.sip_uri import SESSION_HEADER, SipUri, sip_uri

RATE = 8000
FRAME_BYTES = 320  # 20 ms of 16-bit PCM at 8 kHz
FRAME_USEC = 20_000
EVENT_POLL_MS = 10
CODECS = {"PCMU/8000": 255, "PCMA/8000": 254}  # G.711 only, as a trunk offers it
RTP_PORTS = 64  # from a random even base, so that many callers on one machine seldom try the same ports
_SESSION = re.compile(rf"^{SESSION_HEADER}:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_RETRY_AFTER = re.compile(r"^Retry-After:\s*([0-9]{1,6})\b", re.IGNORECASE | re.MULTILINE)
EVAL_HEADER = "X-Voicefleet-Eval"  # the edge forwards it; the dispatcher checks it (docs/sip.md)
_out = threading.Lock()


def say(event: str, **fields: Any) -> None:
    """A line to the parent, from any thread (PJSIP's media clock writes the frames heard)."""
    line = json.dumps({"event": event, **fields})
    with _out, contextlib.suppress(OSError):  # a parent gone: its stdin's EOF hangs the call up
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StderrLog(pj.LogWriter):  # type: ignore[misc]
    """PJSIP's own log to stderr (its console writer prints on stdout, the parent's lines)."""

    def write(self, entry: pj.LogEntry) -> None:
        print(f"pjsip: {entry.msg.rstrip()}", file=sys.stderr, flush=True)


class Line(pj.AudioMediaPort):  # type: ignore[misc]  # SWIG's class has no type information
    """The call's audio between PJSIP's bridge and the parent, called on PJSIP's media clock."""

    def __init__(self) -> None:
        super().__init__()
        self.speech = LatestFrames()

    def play(self, pcm: bytes) -> None:
        """A frame of the caller's speech (or silence) to play (latest_frames.py keeps the newest few)."""
        self.speech.put(pcm)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802  (PJSUA2's name)
        if frame.type == pj.PJMEDIA_TYPE_AUDIO and frame.size:
            say("media", media={"payload": base64.b64encode(bytes(frame.buf)).decode()})

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        pcm = self.speech.take() or bytes(FRAME_BYTES)
        frame.type = pj.PJMEDIA_TYPE_AUDIO
        frame.buf = pj.ByteVector(pcm.ljust(FRAME_BYTES, b"\0")[:FRAME_BYTES])
        frame.size = FRAME_BYTES


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.line: Line | None = None
        self.session_id: str | None = None
        self.answered = False
        self.gave_up: str | None = None  # why the caller CANCELled before any answer
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
            status, reason = (408, self.gave_up) if self.gave_up else (info.lastStatusCode, info.lastReason)
            say("ended" if self.answered else "refused", status=status, reason=reason,
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
    try:
        address = local_address(target)
    except OSError as error:  # a name that does not resolve, no route
        say("refused", status=0, reason=f"{target.host} cannot be reached from here ({error})")
        return
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0  # events polled here: every PJSUA2 call stays on this thread
    config.uaConfig.mainThreadOnly = False
    config.logConfig.level = config.logConfig.consoleLevel = 1  # errors only
    writer = StderrLog()  # kept alive while PJSIP may write
    config.logConfig.writer = writer
    config.logConfig.decor = 0
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
        call.makeCall(target.uri, _invite())
        _serve(endpoint, call, commands, args.answer_seconds)
    except pj.Error as error:
        say("refused", status=0, reason=f"PJSIP: {error.info()}")
    finally:
        endpoint.libDestroy()


def _invite() -> pj.CallOpParam:
    """The INVITE's options: with the parent's eval token (its environment), its X-Voicefleet-Eval header."""
    param = pj.CallOpParam(True)
    token = os.environ.get(ENV)
    if token:
        header = pj.SipHeader()
        header.hName, header.hValue = EVAL_HEADER, token
        param.txOption.headers.append(header)
    return param


def _serve(endpoint: pj.Endpoint, call: Call, commands: queue.SimpleQueue[dict[str, Any] | None],
           answer_seconds: float) -> None:
    """PJSIP's events and the parent's commands until the call is over."""
    give_up = time.monotonic() + answer_seconds
    hanging_up = False
    while not call.over.is_set():
        endpoint.libHandleEvents(EVENT_POLL_MS)
        if not call.answered and not hanging_up and time.monotonic() > give_up:
            call.gave_up = f"no answer within {answer_seconds:g} s"
            hanging_up = _hang_up(call)  # CANCEL
        while not commands.empty() and not call.over.is_set():
            command = commands.get_nowait()
            event = None if command is None else command.get("event")
            if event == "media" and call.line is not None:
                call.line.play(_payload(command))
            elif event == "dtmf" and call.answered:
                _press(call, str(command.get("digit", "")) if command else "")
            elif (command is None or event == "bye") and not hanging_up:
                hanging_up = _hang_up(call)


def _press(call: Call, digit: str) -> None:
    """One key as RFC 4733 telephone-events; one PJSIP refuses (the edge's answer offered no
    telephone-event) is said on stderr, and the call goes on, as a phone's would."""
    try:
        call.dialDtmf(digit)
    except pj.Error as error:
        print(f"sip_agent: key {digit!r} not sent: {error.info()}", file=sys.stderr, flush=True)


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

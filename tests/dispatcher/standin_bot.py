"""A stand-in for `python -m bot`: a real process that follows the bot's CLI, stdout and channel contract.

With `BOT_CHANNEL_URL` set it dials the dispatcher's control channel like the bot
(botchannel/contract.py): hello (with its session, or none for a reserve bot), takes exactly one
`assign` (a cold one waits for its own session's, which brings the values its environment lacks),
answers `webrtc.offer`/`webrtc.ice`, reports `ready`/`ended`. It listens on nothing.

The dispatcher's API and process-management tests use it so they do not pay Pipecat's start-up
for every session; the real bot runs in tests/e2e. `STANDIN_MODE` picks a behaviour:
  serve           announce readiness, answer offers (over the channel), exit 0 on SIGTERM (default)
  crash           exit 3 right after announcing readiness
  fail-start      exit 2 before readiness, saying why on stdout (as the bot does for bad config)
  exit-clean      exit 0 right after announcing readiness (the peer left)
  pipeline-error  after readiness, report a pipeline error (its speech service refused its key) and
                  end with exit 1, as the bot does when the user's pipeline cannot go on
  never-ready     never announce readiness
  forged-times    after readiness, report `ended` at a time that is no number (NaN), then at one ten
                  years ahead, and exit 0: a hostile bot's clock
  ignore-sigterm  like serve, but ignore SIGTERM (the dispatcher must SIGKILL it)
  surrogates      after readiness, report an error and end (exit 0) with a lone surrogate in the
                  error's detail and in its usage rows' names (HOSTILE_USAGE), as JSON allows
  escapes         the same with terminal escapes (HOSTILE_ESCAPES: a clipboard write, a link, a
                  cleared screen) where the surrogates were, after a `usage.so_far` of a row whose
                  model is a spreadsheet formula (FORMULA_ROW)
  intl            the same with ordinary international text (INTL_TEXT: an emoji joined by ZWJ, a
                  French narrow NBSP, a Persian ZWNJ) followed by an ESC, a C1 CSI and an RLO, in
                  the error's detail only
  stdout-surrogates  after readiness, write an `ended` event to stdout (the local provider's line,
                  not the channel) whose detail holds a surrogate's own bytes (ED A0 80) and a
                  `\ud800` escape, and exit 1
  controlled      driven by signals, for the machines contract suite: ready on SIGUSR1, exit 3
                  on SIGUSR2 ("failed"), exit 0 on SIGTERM
  record          like serve, recording as the bot's recorder does: before `ready`, a checkpoint of
                  part 1 (so the upload and its index exist); on SIGTERM, part 1 again whole
                  (`STANDIN_PART_BYTES`, default 5 MiB) through the URL the dispatcher signs
                  (`recording.part`), its log lines (`recording.logs`), its account and a two-exchange
                  transcript (`recording.finished`), then `ended`
`STANDIN_START_SECONDS` (default 0) is a slow cold start: the seconds it spends before dialling, as a
bot importing a big SDK does. `STANDIN_CAPABILITIES` (default `webrtc`): the transports it says it serves.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time


class Channel:
    """The bot's side of the control channel, on a thread (the stand-in is synchronous)."""

    def __init__(self, url: str, token: str, session_id: str | None, assigned: threading.Event) -> None:
        from websockets.sync.client import connect

        from bot.identity import LaunchSocket, modal_identity_token
        from botchannel.contract import Hello, Welcome, encode, parse_frame

        self.session_id = session_id
        self.cold = session_id is not None
        self.assignment: dict | None = None
        self._assigned = assigned
        self._lock = threading.Lock()
        self._ids = iter(range(1, 1 << 30))
        self._replies: dict[int, dict] = {}
        self._replied = threading.Condition()
        # Dials until the dispatcher answers, as the bot re-dials within its connect timeout: on a busy
        # machine one handshake can take longer than a dial's 10 s.
        deadline = time.monotonic() + 90
        while True:
            try:
                self.ws = connect(url, additional_headers={"Authorization": f"Bearer {token}"}, proxy=None,
                                  open_timeout=10).__enter__()  # closed with the process
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        machine_id = os.environ.get("BOT_MACHINE_ID", f"standin-{os.getpid()}")
        proof = LaunchSocket(os.environ).proof() if os.environ.get("BOT_IDENTITY_FD") else None  # as the bot's
        if os.environ.get("BOT_IDENTITY") == "modal":  # a Modal Sandbox's token, as the bot sends it
            proof = modal_identity_token(os.environ)
        self.ws.send(encode(Hello(machine_id=machine_id, image=os.environ.get("BOT_IMAGE_DIGEST", "standin"),
                                  capabilities=tuple(os.environ.get("STANDIN_CAPABILITIES", "webrtc").split(",")),
                                  session_id=session_id,
                                  identity=proof)))
        if not isinstance(parse_frame(self.ws.recv(timeout=10)), Welcome):
            raise SystemExit("no welcome")
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from websockets.exceptions import ConnectionClosed

        from botchannel.contract import Reply, ReplyError, Request, encode, parse_frame

        try:
            for raw in self.ws:
                frame = parse_frame(raw)
                if isinstance(frame, Reply):  # the answer to one of its own requests (ask)
                    with self._replied:
                        self._replies[frame.id] = dict(frame.result or {}) if frame.ok else {"error": frame.error}
                        self._replied.notify_all()
                    continue
                if not isinstance(frame, Request):
                    continue
                try:
                    result = self._handle(frame.method, dict(frame.params))
                    reply = Reply(frame.id, result=result)
                except LookupError as exc:
                    status, code = exc.args
                    reply = Reply(frame.id, error=ReplyError(status, code, code))
                with self._lock:
                    self.ws.send(encode(reply))
        except ConnectionClosed:
            pass
        if self.assignment is None:  # a bot without its channel before its assignment ends
            print(json.dumps({"event": "ended", "reason": "channel_lost"}), flush=True)
            os._exit(3)

    def _handle(self, method: str, params: dict) -> dict:
        if method == "assign":
            if self.assignment is not None:
                if params.get("session_id") == self.session_id:  # sent again: its answer was lost
                    return {"session_id": self.session_id}
                raise LookupError(409, "already_assigned")
            if self.cold and params.get("session_id") != self.session_id:
                raise LookupError(409, "not_its_session")
            self.session_id = params["session_id"]
            self.assignment = params
            if (record := os.environ.get("STANDIN_RECORD_DIR")) and not self.cold:
                write_record(os.path.join(record, f"{self.session_id}.json"),
                             {"assigned": True, "body": json.dumps(params.get("body", {}), separators=(",", ":")),
                              "pid": os.getpid()})
            self._assigned.set()
            return {"session_id": self.session_id}
        if self.assignment is None and not (self.cold and self._assigned.wait(10)):  # an offer may overtake it
            raise LookupError(409, "not_assigned")
        if method == "webrtc.offer":
            answer = {"sdp": "answer-to:" + params["sdp"], "type": "answer", "pc_id": "standin-pc"}
            if "request_data" in params:  # shows tests what reached the bot
                answer["request_data_seen"] = params["request_data"]
            if os.environ.get("STANDIN_SIGN_ANSWERS"):  # which bot answered: its session and pid
                answer["bot"] = f"{self.session_id}/{os.getpid()}"
            return answer
        if method == "webrtc.ice":
            return {"status": "ok"}
        raise LookupError(404, "unknown_method")

    def ask(self, method: str, params: dict, timeout: float = 30.0) -> dict:
        """A request of its own to the dispatcher (the recording's), and its answer."""
        from botchannel.contract import Request, encode

        request_id = next(self._ids)
        with self._lock:
            self.ws.send(encode(Request(request_id, method, params)))
        with self._replied:
            if not self._replied.wait_for(lambda: request_id in self._replies, timeout):
                raise SystemExit(f"no answer to {method}")
            answer = self._replies.pop(request_id)
        if "error" in answer:
            raise SystemExit(f"{method} refused: {answer['error']}")
        return answer

    def report(self, event: str, t: float | None = None, **fields: object) -> None:
        from botchannel.contract import Report, encode

        if self.session_id is not None:
            with self._lock:
                self.ws.send(encode(Report(event=event, session_id=self.session_id,
                                           t=time.time() if t is None else t, **fields)))


class SignalFlag:
    """Set by a signal handler. Not a threading.Event: its set() takes a lock, and a second signal
    landing inside the first handler deadlocked the process on that lock (a bot orphaned by a
    killed dispatcher got SIGTERM twice and hung). A handler may only set a plain attribute."""

    def __init__(self) -> None:
        self.value = False

    def set(self, *_: object) -> None:
        self.value = True

    def is_set(self) -> bool:
        return self.value

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.value and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        return self.value


PIPELINE_ERROR = "DeepgramSTTService#0: the API key was rejected (401)"
# What the `surrogates` and `escapes` modes report; each name gets the hostile text appended.
HOSTILE_USAGE = ({"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini", "prompt_tokens": 1200,
                  "completion_tokens": 80},
                 {"kind": "tts", "processor": "CartesiaTTSService#0", "model": "sonic", "characters": 32})
FORMULA_ROW = {"kind": "llm", "processor": "OpenAILLMService#1", "model": '=HYPERLINK("https://evil.example","x")',
               "prompt_tokens": 10}
HOSTILE_ESCAPES = ("\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;https://evil.example/\x07docs\x1b]8;;\x07\x1b[2K\r"
                   "\x1b[2J\x1b[H\x9b31m")

INTL_TEXT = ("famille \U0001F468\u200d\U0001F469\u200d\U0001F467 \u00abBonjour\u202f!\u00bb "
             "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\u00a0x")
INTL_STEERING = "\x1b[2J\x9b31m\u202eevil"


def record_session(session_id: str | None, body: str | None, ice: object = None, room_url: str | None = None) -> None:
    if (record := os.environ.get("STANDIN_RECORD_DIR")) and session_id:
        write_record(os.path.join(record, f"{session_id}.json"),
                     {"argv": sys.argv[1:], "session_id": session_id, "body": body, "ice": ice, "room_url": room_url,
                      "pid": os.getpid(), "has_dispatcher_keys": "DISPATCHER_API_KEYS" in os.environ})


def write_record(path: str, record: dict[str, object]) -> None:
    """Written whole or not at all: tests poll for the file and read it as soon as it exists, and a
    busy machine can run them between an open() that created it and the write that fills it."""
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump(record, f)
    os.replace(partial, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-id")
    parser.add_argument("--max-duration", type=int)
    args = parser.parse_args()
    args.session_id = args.session_id or os.environ.get("VOICEFLEET_SESSION_ID")  # a cold bot's, from its launcher
    mode = os.environ.get("STANDIN_MODE", "serve")
    stop, ready, failed = SignalFlag(), SignalFlag(), SignalFlag()
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore-sigterm" else stop.set)
    signal.signal(signal.SIGUSR1, ready.set)
    signal.signal(signal.SIGUSR2, failed.set)
    # Record what the dispatcher handed over (never the secrets). Written once the signal
    # handlers are in place, so a test that saw the record may signal the process; with a
    # channel, once the session's values came over it (the environment holds none of them).
    url = os.environ.get("BOT_CHANNEL_URL")
    if not url or mode == "controlled":  # (a controlled bot's test signals it once recorded)
        record_session(args.session_id, os.environ.get("VOICEFLEET_BODY"), room_url=os.environ.get("DAILY_ROOM_URL"))

    if mode == "controlled":
        while not (ready.is_set() or stop.is_set() or failed.is_set()):
            stop.wait(0.02)
        if failed.is_set() or stop.is_set():
            return 3 if failed.is_set() else 0
    if mode == "never-ready":
        stop.wait()
        return 0
    if mode == "fail-start":
        print(json.dumps({"event": "ended", "reason": "config_error", "detail": "stand-in refused"}), flush=True)
        return 2
    channel = None
    stop.wait(float(os.environ.get("STANDIN_START_SECONDS", "0")))
    if url:
        assigned = threading.Event()
        channel = Channel(url, os.environ["BOT_CHANNEL_TOKEN"], args.session_id, assigned)
        if args.session_id is None:  # a reserve bot: idle until its one assignment
            print(json.dumps({"event": "idle", "pid": os.getpid()}), flush=True)
        deadline = time.monotonic() + 120  # a cold bot's wait for its session's values, as the bot's
        while not (assigned.wait(0.05) or stop.is_set()):
            if args.session_id is not None and time.monotonic() > deadline:
                print(json.dumps({"event": "ended", "reason": "channel_lost",
                                  "detail": "its session's values did not arrive over the channel"}), flush=True)
                return 3
        if stop.is_set():
            return 0
        if args.session_id is not None:
            values = channel.assignment or {}
            record_session(args.session_id, json.dumps(values.get("body", {}), separators=(",", ":")),
                           ice=values.get("ice_config"), room_url=values.get("room_url"))
        if mode == "record":
            upload_part(channel, url, 4096)  # a checkpoint: the upload is open, its index written
        channel.report("ready")
    print(json.dumps({"event": "ready", "pid": os.getpid(), "session_id": channel.session_id if channel else None}),
          flush=True)
    if mode == "crash":
        return 3
    if mode == "failed-then-stopped":  # says its bot failed, then lingers until it is stopped (a phone call's end)
        print(json.dumps({"event": "ended", "reason": "bot_failed", "exit_code": 4,
                          "detail": "bot() raised ValueError: missing required parameters"}), flush=True)
        stop.wait()
        return 0
    if mode == "exit-clean":
        return 0
    if mode == "pipeline-error" and channel is not None:
        channel.report("error", reason="unusable", detail=PIPELINE_ERROR)
        channel.report("ended", reason="error", detail="the pipeline cannot go on", exit_code=1)
        return 1
    if mode in ("surrogates", "escapes", "intl") and channel is not None:
        hostile = {"surrogates": "\ud800", "escapes": HOSTILE_ESCAPES, "intl": INTL_TEXT + INTL_STEERING}[mode]
        if mode == "escapes":
            channel.ask("usage.so_far", {"usage": [FORMULA_ROW]})
        channel.report("error", reason="unusable", detail=f"its speech service refused{hostile}")
        named = "" if mode == "intl" else hostile  # a usage row's names are printable or refused whole
        channel.report("ended", reason="peer_left", usage=tuple(
            {**row, "processor": row["processor"] + named, "model": row["model"] + named} for row in HOSTILE_USAGE))
        return 0
    if mode == "stdout-surrogates":
        sys.stdout.buffer.write(b'{"event":"ended","reason":"bot_failed","exit_code":1,'
                                b'"detail":"raw \xed\xa0\x80 escaped \\ud800"}\n')
        sys.stdout.flush()
        return 1
    if mode == "forged-times" and channel is not None:
        with channel._lock:
            channel.ws.send(json.dumps({"type": "report", "event": "ended", "session_id": channel.session_id,
                                        "t": float("nan"), "reason": "peer_left"}))  # json writes `NaN`
        channel.report("ended", reason="peer_left", detail="forged by the bot", t=time.time() + 10 * 365 * 86400)
        return 0
    if mode == "controlled":
        while not (stop.is_set() or failed.is_set()):
            stop.wait(0.02)
        return 3 if failed.is_set() else 0
    if os.environ.get("STANDIN_CONNECT"):
        print(json.dumps({"event": "connected"}), flush=True)
    while not stop.wait(0.1):
        pass
    if mode == "record" and channel is not None:
        record_its_end(channel, url)
    return 0


def upload_part(channel: Channel, channel_url: str, size: int) -> int:
    """Part 1 of `size` bytes (a WAV header, then audio) put through the URL the dispatcher signs; its size."""
    import httpx

    from bot.recording.uploader import http_base
    from botchannel.recording import wav_header

    part = wav_header(16000) + b"\1\0" * ((size - 44) // 2)
    url = channel.ask("recording.part", {"part": 1})["url"]
    url = url if "://" in url else http_base(channel_url).rstrip("/") + url  # the folder store's: a path
    httpx.put(url, content=part, timeout=60).raise_for_status()
    return len(part)


def record_its_end(channel: Channel, channel_url: str) -> None:
    """What the bot's recorder does at the session's end (bot/recording/recorder.py `finish`)."""
    size = upload_part(channel, channel_url, int(os.environ.get("STANDIN_PART_BYTES", str(5 * 1024 * 1024))))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    channel.ask("recording.logs", {"lines": [{"time": now, "level": "info", "logger": "bot", "message": "ended"}]})
    turns = [{"who": "caller", "text": "hello", "start": 0.5, "end": 1.2},
             {"who": "bot", "text": "hi there", "start": 1.9, "end": 2.6, "latency": 0.7, "interrupted": False},
             {"who": "caller", "text": "bye", "start": 3.5, "end": 4.0},
             {"who": "bot", "text": "goodbye", "start": 4.6, "end": 5.2, "latency": 0.6, "interrupted": False}]
    channel.ask("recording.finished", {"parts": 1, "bytes": size, "degraded": [], "transcript": turns})
    channel.report("ended", reason="signal", detail="SIGTERM", exit_code=0)


if __name__ == "__main__":
    sys.exit(main())

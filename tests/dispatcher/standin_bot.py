"""A stand-in for `python -m bot`: a real process that follows the bot's CLI and stdout contract.

The dispatcher's API and process-management tests use it so they do not pay Pipecat's start-up
for every session; the real bot runs in tests/e2e. `STANDIN_MODE` picks a behaviour:
  serve           announce readiness, answer offers, exit 0 on SIGTERM (default)
  crash           exit 3 right after announcing readiness
  exit-clean      exit 0 right after announcing readiness (the peer left)
  never-ready     never announce readiness
  ignore-sigterm  like serve, but ignore SIGTERM (the dispatcher must SIGKILL it)
  controlled      driven by signals, for the machines contract suite: ready on SIGUSR1, exit 3
                  on SIGUSR2 ("failed"), exit 0 on SIGTERM
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        offer = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._reply(200, {"sdp": "answer-to:" + offer["sdp"], "type": "answer", "pc_id": "standin-pc"})

    def do_PATCH(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(200, {"status": "ok"})

    def _reply(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-id")
    parser.add_argument("--max-duration", type=int)
    args = parser.parse_args()
    mode = os.environ.get("STANDIN_MODE", "serve")
    stop, ready, failed = threading.Event(), threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore-sigterm" else lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: ready.set())
    signal.signal(signal.SIGUSR2, lambda *_: failed.set())
    # Record what the dispatcher handed over (never the secrets). Written once the signal
    # handlers are in place, so a test that saw the record may signal the process.
    if record := os.environ.get("STANDIN_RECORD_DIR"):
        with open(os.path.join(record, f"{args.session_id}.json"), "w") as f:
            json.dump({"argv": sys.argv[1:], "body": os.environ.get("VOICEFLEET_BODY"),
                       "pid": os.getpid(), "has_dispatcher_keys": "DISPATCHER_API_KEYS" in os.environ}, f)

    if mode == "controlled":
        while not (ready.is_set() or stop.is_set() or failed.is_set()):
            stop.wait(0.02)
        if failed.is_set() or stop.is_set():
            return 3 if failed.is_set() else 0
    if mode == "never-ready":
        stop.wait()
        return 0
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"event": "ready", "port": server.server_address[1], "pid": os.getpid()}), flush=True)
    if mode == "crash":
        return 3
    if mode == "exit-clean":
        return 0
    if mode == "controlled":
        while not (stop.is_set() or failed.is_set()):
            stop.wait(0.02)
        return 3 if failed.is_set() else 0
    if os.environ.get("STANDIN_CONNECT"):
        print(json.dumps({"event": "connected"}), flush=True)
    while not stop.wait(0.1):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

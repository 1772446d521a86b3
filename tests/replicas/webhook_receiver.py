"""A lifecycle webhooks receiver in a process of its own, as a team's endpoint would be: every POST is
verified with the Standard Webhooks reference library and written, one JSON line per delivery, to
the file named on its command line; a delivery that fails verification is answered 400 and written
as such. The signing secret comes in the environment (`WEBHOOK_SECRET`), never the command line.

    python -m tests.replicas.webhook_receiver PORT OUT
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    verifier = Webhook(os.environ["WEBHOOK_SECRET"])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                event = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                line = {"id": self.headers["webhook-id"], "type": event["type"], "data": event["data"]}
                status = 204
            except WebhookVerificationError as exc:
                line, status = {"invalid": str(exc), "id": self.headers.get("webhook-id")}, 400
            with lock, open(out, "a") as file:
                file.write(json.dumps(line) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Review of "aiohttp imported by the first call out": the import moved from the dispatcher's start into
`HttpClient`'s first request, which runs on the event loop. A cloud dispatcher's first call out is made
while it serves (the provider's `settle`, the reserve, the reaper: dispatcher/wiring.py `running`), so that
import (~0.14 s of CPU measured in docs/performance.md, ~0.2 s on a busy host, two SSL contexts built)
now stalls every request and relay in flight on that replica. The client is built before the loop runs, as
wiring builds providers; the test asks only where the import happened, never how long it took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# A fresh interpreter (aiohttp not loaded), a local HTTP server on a thread (standard library), one request.
PROBE = """
import asyncio, http.server, json, sys, threading

class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
threading.Thread(target=server.serve_forever, daemon=True).start()
from dispatcher.outbound.http_client import HttpClient

imported = []  # for each import of aiohttp: whether an event loop was running on the importing thread

def hook(event, args):
    if event == "import" and args[0] == "aiohttp":
        try:
            asyncio.get_running_loop()
            imported.append(True)
        except RuntimeError:
            imported.append(False)

sys.addaudithook(hook)
client = HttpClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=20.0)  # built as wiring does

async def first_call():
    answer = await client.request("GET", "/")
    await client.aclose()
    return answer.status_code

status = asyncio.run(first_call())
print(json.dumps({"status": status, "before": "aiohttp" in sys.modules, "on_loop": imported}))
"""


def test_the_first_call_out_does_not_import_aiohttp_on_the_event_loop(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=25, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["status"] == 200  # the call went out and came back: the probe exercised the client
    assert True not in found["on_loop"], "aiohttp was imported on the running event loop by the first call out"

"""What a local dispatcher's start imports, up to its first `/healthz` answer: neither aiohttp (the
providers', webhooks' and regions' HTTP client, loaded by the first call out) nor redis-py (the shared
store's client, loaded where `REDIS_URL` is set). Each is a tenth of a second or more of every start's
CPU: every test's dispatcher and every replica's cold start (docs/performance.md, "Dispatcher start-up")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
NOT_AT_A_LOCAL_START = ("aiohttp", "redis")
# The dispatcher runs as `python -m dispatcher` does, in this process; a thread asks for /healthz (with the
# standard library: it must import neither) and, once answered, prints what had been imported.
PROBE = """
import json, os, sys, threading, time, urllib.request
port = sys.argv[1]
sys.argv = ["python -m dispatcher", "--host", "127.0.0.1", "--port", port]

def probe():
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    print(json.dumps([name for name in NAMES if name in sys.modules]), flush=True)
                    os._exit(0)
        except OSError:
            time.sleep(0.05)
    os._exit(3)

threading.Thread(target=probe, daemon=True).start()
from dispatcher.__main__ import main
sys.exit(main())
"""


def test_a_local_start_imports_neither_the_http_client_nor_the_store_client(tmp_path: Path) -> None:
    # The environment a local start gets with the defaults (the bench's): no store, no provider.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    script = f"NAMES = {NOT_AT_A_LOCAL_START!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", script, str(free_port())], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []

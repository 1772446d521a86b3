"""The command the `up`'s note (and docs/operations.md) gives for copying a release's instance template into a cell's
project, run as written (bash, real jq and curl) against a local server standing for Compute Engine's REST insert,
with a `gcloud` that answers `describe` and `auth print-access-token` as the real one does. The access token must
reach the request's Authorization header and no process's command line, which every local user can read in
/proc while curl runs."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from stacks.gcp.cell_templates import copy_command

TOKEN = "ya29.a-token-only-the-header-may-hold"  # noqa: S105 - a test's stand-in for gcloud's token
TEMPLATE = {"name": "voicefleet-prod--bot-2026", "description": "d", "properties": {
    "serviceAccounts": [{"email": "bots@stack.iam.gserviceaccount.com"}],
    "networkInterfaces": [{"network": "n", "name": "nic0", "fingerprint": "f", "subnetwork": "s"}],
    "metadata": {"fingerprint": "m", "items": [{"key": "block-project-ssh-keys", "value": "true"}]}}}
GCLOUD = f"""#!/bin/sh
case "$*" in
  "compute instance-templates describe"*) printf '%s' '{json.dumps(TEMPLATE)}' ;;
  "auth print-access-token") echo {TOKEN} ;;
  *) echo "unexpected gcloud $*" >&2; exit 2 ;;
esac
"""


def _command_lines() -> list[str]:
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # ended meanwhile
    return lines


@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl") and shutil.which("bash")),
                    reason="needs bash, jq and curl, as the operator's shell does")
def test_the_copy_command_sends_the_token_in_a_header_and_on_no_command_line(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    class Insert(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            seen["authorization"] = self.headers.get("Authorization")
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen["exposed"] = [line for line in _command_lines() if TOKEN in line]  # curl is running now
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Insert)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gcloud = tmp_path / "gcloud"
        gcloud.write_text(GCLOUD)
        gcloud.chmod(0o755)
        command = copy_command("voicefleet-prod--bot-2026", "stack-project").replace(
            "https://compute.googleapis.com", f"http://127.0.0.1:{server.server_address[1]}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert seen["authorization"] == f"Bearer {TOKEN}"
    assert seen["body"]["properties"]["serviceAccounts"][0]["email"] == "CELL_BOTS_EMAIL"
    assert seen["exposed"] == []

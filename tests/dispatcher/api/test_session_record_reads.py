"""Opening a session on the dashboard reads it a bounded number of times: an admin key's every read of
another key's session (its listing, its timeline) is one record on the audit trail, so waiting for a
recording still being uploaded must not read it once a second. Runs the page's own module
(web/src/session_record.js) in Node against a dispatcher that answers as one keeping nothing yet."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[3] / "web" / "src" / "session_record.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (web/ needs it to build)")

# The artifacts route's 404 (nothing kept yet) and a timeline that says nothing of the recording.
PROGRAM = """
import { loadRecord } from %(module)s;
const reads = [];
async function api(path) {
  reads.push(path);
  if (path.endsWith("/artifacts")) {
    throw Object.assign(new Error("session s kept no artifacts"), { status: 404, code: "not_found" });
  }
  return { events: [{ event: "ended", at: 1 }] };
}
const known = %(known)s;
const record = await loadRecord(api, "s", { waitSeconds: %(wait)s, events: known });
console.log(JSON.stringify({ reads, record }));
"""


def _load(wait: float, known: list[dict[str, object]] | None) -> dict[str, object]:
    program = PROGRAM % {"module": json.dumps(MODULE.as_uri()), "wait": wait, "known": json.dumps(known)}
    done = subprocess.run([str(NODE), "--input-type=module", "-e", program], capture_output=True, text=True,
                          timeout=120, check=True)
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_waiting_for_a_recording_reads_the_session_a_few_times_not_each_second() -> None:
    answer = _load(7, [{"event": "ended", "at": 1}])
    reads = answer["reads"]
    assert isinstance(reads, list)
    assert reads.count("/sessions/s/timeline") == 1, reads  # once more at the end: why nothing was kept
    assert reads.count("/sessions/s/artifacts") <= 4, reads
    assert answer["record"] == {"kept": False, "why": "session s kept no artifacts"}


def test_a_timeline_just_read_is_not_read_again() -> None:
    answer = _load(0, [{"event": "recording_off", "at": 1}])
    assert answer["reads"] == ["/sessions/s/artifacts"]
    assert answer["record"] == {"kept": False, "why": "the start asked for no recording"}


def test_without_a_timeline_it_is_read_to_say_why() -> None:
    answer = _load(0, None)
    assert answer["reads"] == ["/sessions/s/artifacts", "/sessions/s/timeline"]

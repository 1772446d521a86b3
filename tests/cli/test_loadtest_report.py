"""`voicefleet loadtest --report RESULT.json`: a saved result's tables and chart again, with no run
(the dispatcher it names is not reachable here, and nothing is asked of it)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from voicefleet.loadtest.record import SessionRecord
from voicefleet.loadtest.result import write_result
from voicefleet.loadtest.summary import summarise
from voicefleet.main import voicefleet

NOWHERE = "http://127.0.0.1:9"  # the discard port: no dispatcher
OWN_COST = {"cpu_seconds": 2.0, "cpu_seconds_per_session": 1.0, "cpu_share_of_one_core": 0.2,
            "loop_lag_p99_seconds": 0.01}
SETTINGS = {"url": NOWHERE, "transport": "webrtc", "rate_per_minute": 5.0, "duration_seconds": 60.0,
            "started_at": "2026-11-26T12:00:00Z"}


def report(*args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["loadtest", "--url", NOWHERE, "--report", *args], prog_name="voicefleet",
                              env={"VOICEFLEET_API_KEY": None, "VOICEFLEET_URL": None, "VOICEFLEET_ADMIN_KEY": None})


def saved(directory: Path) -> Path:
    records = [SessionRecord(0, 0.0, "webrtc", status=201, start_answer=0.3, ready=0.3, first_audio=1.3, turns=[0.6],
                             timeline={"ready": 0.004, "first_audio": 1.2}),
               SessionRecord(1, 12.0, "webrtc", outcome="refused", code="at_capacity", status=429)]
    directory.mkdir()
    return write_result(directory / "result.json", SETTINGS, records, summarise(records), OWN_COST)


def test_a_saved_result_is_shown_again_with_its_chart(tmp_path: Path) -> None:
    path = saved(tmp_path / "run")
    result = report(str(path))
    assert result.exit_code == 0, result.output
    assert "CLOCK" in result.stdout and "SAME INTERVAL" in result.stdout and "at_capacity" in result.stdout
    assert (tmp_path / "run" / "chart.png").read_bytes().startswith(b"\x89PNG")
    elsewhere = tmp_path / "elsewhere"
    as_json = report(str(path), "--out", str(elsewhere), "--json")
    assert as_json.exit_code == 0, as_json.output
    shown = json.loads(as_json.stdout)
    assert shown["summary"]["sessions"]["refused"] == 1 and shown["load_generator"] == OWN_COST
    assert (elsewhere / "chart.png").exists()


def test_a_file_that_is_not_a_result_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"sessions": []}))
    result = report(str(path))
    assert result.exit_code == 2
    assert "--report" in result.stderr and "settings, load_generator, sessions" in result.stderr
    path.write_text(json.dumps({"settings": {}, "load_generator": {}, "sessions": [{"index": 0}]}))
    result = report(str(path))
    assert result.exit_code == 2 and "session 0 of the result" in result.stderr
    assert not (tmp_path / "chart.png").exists()

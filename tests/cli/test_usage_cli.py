"""`voicefleet usage` against a real `python -m dispatcher`: its sessions, once ended, per key as a
table with a total, as CSV for a billing job, as JSON; a span the dispatcher refuses in one line (exit 1)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

ADMIN_KEY = "vf-admin-usage-2c4e6a8b0d"
ACME_KEY, BETA_KEY = "vf-acme-usage-1b3d5f7a9c", "vf-beta-usage-9e7c5a3b1d"


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(voicefleet, ["usage", *args], prog_name="voicefleet",
                              env={"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})


def test_usage_per_key_as_a_table_csv_and_json(tmp_path: Path) -> None:
    env = {"DISPATCHER_API_KEYS": f"acme:{ACME_KEY},beta:{BETA_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        url = dispatcher.base_url
        for key in (ACME_KEY, ACME_KEY, BETA_KEY):
            headers = {"Authorization": f"Bearer {key}"}
            started = httpx.post(f"{url}/start?wait=started", json={}, timeout=60, headers=headers)
            assert started.status_code == 201, started.text
            stopped = httpx.delete(f"{url}/sessions/{started.json()['session_id']}", timeout=60, headers=headers)
            assert stopped.status_code in (202, 204), stopped.text

        def counted() -> bool:
            result = run(url, "--json")
            return result.exit_code == 0 and json.loads(result.stdout)["totals"]["sessions"] == 3

        wait_until(counted, "three ended sessions in the usage", timeout=60, detail=dispatcher.log)
        lines = run(url).stdout.splitlines()
        assert lines[0].split() == ["KEY", "SESSIONS", "MINUTES", "COST", "$", "NOT", "PRICED"]
        assert [line.split()[:2] for line in lines[1:4]] == [["acme", "2"], ["beta", "1"], ["TOTAL", "3"]]
        rows = list(csv.DictReader(io.StringIO(run(url, "--csv", "--by", "release").stdout)))
        assert [(row["release"], row["sessions"]) for row in rows] == [("default", "3"), ("TOTAL", "3")]
        assert float(rows[0]["cost_usd"]) == 0.0  # local processes cost nothing
        listed = CliRunner().invoke(voicefleet, ["sessions"], prog_name="voicefleet",
                                    env={"VOICEFLEET_URL": url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY}).stdout.splitlines()
        column = listed[0].index("COST $")
        assert [line[column:].split()[0] for line in listed[1:]] == ["0.000000"] * 3  # each ended session's cost
        refused = run(url, "--since", "500d")
        assert refused.exit_code == 1 and "at most 400 days" in refused.output, refused.output


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_text() -> None:
    from voicefleet.tables import csv_cell

    for formula in ('=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"):
        assert csv_cell(formula) == "'" + formula
    assert [csv_cell(cell) for cell in ("llm:=x", "-", "0.000000", "acme")] == ["llm:=x", "-", "0.000000", "acme"]
    assert csv_cell("sonic\x1b[2J") == "sonic\\x1b[2J"

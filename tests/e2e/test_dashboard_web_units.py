"""The dashboard's web unit tests (web/test/dashboard_render.test.mjs: a session's cost by part, its bot
logs as text a page at a time, the admin actions' confirmation, the campaigns), run with node in headless Chromium as
`npm test --prefix web` runs them, so the suite holds them too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.browser import chromium_path, node_chromium_missing

WEB = Path(__file__).parents[2] / "web"


@pytest.mark.skipif(node_chromium_missing(WEB) is not None, reason=str(node_chromium_missing(WEB)))
def test_the_dashboards_session_parts_render_as_the_api_gives_them(tmp_path: Path) -> None:
    run = subprocess.run(
        ["node", "--test", "test/dashboard_render.test.mjs"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": os.environ.get("PATH", ""), "CHROMIUM": chromium_path() or "", "HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 15" in run.stdout, run.stdout[-3000:]

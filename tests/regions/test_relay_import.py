"""A region with peers loads the relay's HTTP library when its relay is built, before the event loop runs:
at the first relayed request the import (~0.14 s, docs/performance.md) would stall every request in flight
on that replica. A single region (every local dispatcher) never loads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from types import MappingProxyType
from dispatcher.regions.config import Regions
from dispatcher.regions.relay import RegionRelay

peers = sys.argv[1] == "peers"
regions = Regions("eu", MappingProxyType({"eu": "http://127.0.0.1:9", "us": "http://127.0.0.1:10"}),
                  b"relay-import-region-secret-0123456789") if peers else Regions()
RegionRelay(regions)
print(json.dumps("aiohttp" in sys.modules))
"""


@pytest.mark.parametrize(("regions", "loaded"), [("peers", True), ("alone", False)])
def test_the_relay_loads_its_http_library_when_built_and_only_with_peers(regions: str, loaded: bool,
                                                                          tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, regions], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) is loaded

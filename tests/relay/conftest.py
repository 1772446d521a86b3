"""Relay tests: coturn in a hub namespace, client and bot in namespaces of their own."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.coturn import Coturn, coturn_unavailable_reason, run_coturn
from tests.support.netns import TURN_ADDRESS, RelayTopology, relay_topology, unavailable_reason

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topology() -> Iterator[RelayTopology]:
    reason = unavailable_reason() or coturn_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with relay_topology() as created:
        yield created


@pytest.fixture
def turn_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def coturn(topology: RelayTopology, turn_secret: str, tmp_path: Path) -> Iterator[Coturn]:
    with run_coturn(topology.hub, TURN_ADDRESS, turn_secret, tmp_path / "coturn") as server:
        yield server


def run_in(namespace: str, module: str, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Runs `python -m <module>` in the namespace with `request` as JSON on stdin; its JSON answer."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", module],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{module} in {namespace} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer

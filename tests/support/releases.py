"""Two local releases for real dispatcher processes, and the admin calls on them (docs/releases.md):
shared by the replicas', the regions' tests and bench/release_propagation.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

ADMIN_KEY = "releases-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WAIT = 60.0  # a safety net for a loaded machine, never what a test checks


def release_env(folder: Path, weights: str = "stable=90,next=10") -> dict[str, str]:
    """Two releases, `stable` and `next`, each a bot file of its own, starting at `weights`."""
    for name in ("bot.py", "bot_v2.py"):
        (folder / name).write_text("async def bot(runner_args): ...\n")
    return {"BOT_RELEASES": f"stable={folder / 'bot.py'},next={folder / 'bot_v2.py'}", "RELEASE_WEIGHTS": weights,
            "DISPATCHER_ADMIN_KEYS": ADMIN_KEY}


def weights(base_url: str) -> dict[str, int]:
    """Each release's weight as `GET /releases` at `base_url` shows it."""
    answer = httpx.get(f"{base_url}/releases", headers=ADMIN, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    return {r["name"]: r["weight"] for r in answer.json()["releases"]}


def admin(method: str, base_url: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, base_url + path, headers=ADMIN, timeout=WAIT, **kwargs)  # type: ignore[arg-type]


def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)

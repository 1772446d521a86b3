"""Two local releases for real dispatcher processes, and the admin calls on them (docs/releases.md):
shared by the replicas', the regions' tests and bench/release_propagation.py; and the automatic
rollback's tests' callers (a start drawn by weight, its end awaited)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from dispatcher.releases.health import SHORT_SESSION_SECONDS

if TYPE_CHECKING:  # aiortc's import is the callers' tests' own, not the benches' that share this module
    from tests.support.webrtc_client import WebRTCClient

ADMIN_KEY = "releases-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WAIT = 60.0  # a safety net for a loaded machine, never what a test checks


def release_env(folder: Path, weights: str = "stable=90,next=10") -> dict[str, str]:
    """Two releases, `stable` and `next`, each a bot file of its own, starting at `weights`."""
    for name in ("bot.py", "bot_v2.py"):
        (folder / name).write_text("async def bot(runner_args): ...\n")
    return {"BOT_RELEASES": f"stable={folder / 'bot.py'},next={folder / 'bot_v2.py'}", "RELEASE_WEIGHTS": weights,
            "DISPATCHER_ADMIN_KEYS": ADMIN_KEY}


def releases_answer(base_url: str, admin_key: str = ADMIN_KEY) -> dict[str, Any]:
    """`GET /releases` at `base_url`: the traffic held there, its version and each release."""
    answer = httpx.get(f"{base_url}/releases", headers={"Authorization": f"Bearer {admin_key}"}, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def listed_releases(base_url: str, admin_key: str = ADMIN_KEY) -> dict[str, dict[str, Any]]:
    """Each release as `GET /releases` at `base_url` shows it, by name."""
    return {r["name"]: r for r in releases_answer(base_url, admin_key)["releases"]}


def held_version(base_url: str) -> tuple[int, str]:
    """The version of the traffic held at `base_url`: (milliseconds, the region that made it)."""
    ms, region = releases_answer(base_url)["version"]
    return int(ms), str(region)


def weights(base_url: str) -> dict[str, int]:
    """Each release's weight as `GET /releases` at `base_url` shows it."""
    return {name: release["weight"] for name, release in listed_releases(base_url).items()}


def admin(method: str, base_url: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, base_url + path, headers=ADMIN, timeout=WAIT, **kwargs)  # type: ignore[arg-type]


def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


def rollback_env(stable_bot: Path, canary_bot: Path, *, warm: int = 0) -> dict[str, str]:
    """A dispatcher whose canary `next` (`canary_bot`) takes half the starts beside `stable`
    (`stable_bot`), judged by the automatic rollback; each session runs its release's bot file in a
    process of its own. With `warm`, the reserve keeps that many idle bots, split between the two
    releases by weight (dispatcher/reserve/releases.py), so a bot imports Pipecat while the calls
    before it talk, not while its caller waits; else (0) every start is cold."""
    reserve = {"RESERVE_MIN_IDLE": str(warm), "RESERVE_MAX_IDLE": str(warm), "RESERVE_BUFFER": "0",
               "RESERVE_BURST": "0"} if warm else {"RESERVE_MAX_IDLE": "0"}
    return {"BOT_RELEASES": f"stable={stable_bot},next={canary_bot}", "RELEASE_WEIGHTS": "stable=50,next=50",
            **reserve, "VOICEFLEET_ICE_LOOPBACK": "1", "MAX_CONCURRENT_SESSIONS": "100"}


ROOT = Path(__file__).resolve().parents[2]
PARROT, BROKEN = ROOT / "examples" / "parrot" / "bot.py", ROOT / "tests" / "bots" / "broken_raises.py"


def smoke_env(canary: int, api_key: str, admin_key: str) -> dict[str, str]:
    """The stack's shape for the smoke gate: with nothing stored, the newest release (`next`, the
    parrot) enters at `canary` % once smoked beside `stable` (the parrot); the oldest, `broken` (its
    `bot()` raises), takes nothing. Cold starts only, on loopback ICE."""
    releases = {"canaryPercent": canary, "releases": [
        {"name": "broken", "images": {"*": str(BROKEN)}},
        {"name": "stable", "images": {"*": str(PARROT)}},
        {"name": "next", "images": {"*": str(PARROT)}},
    ]}
    return {"RELEASES": json.dumps(releases), "DISPATCHER_API_KEYS": api_key, "DISPATCHER_ADMIN_KEYS": admin_key,
            "RESERVE_MAX_IDLE": "0", "VOICEFLEET_ICE_LOOPBACK": "1", "MAX_CONCURRENT_SESSIONS": "20"}


async def drawn_start(api: httpx.AsyncClient, n: int) -> tuple[str, str]:
    """A start drawn by weight, as the n-th caller: its session id and release (pinned sessions are
    never judged: a client could pin them to sink a canary)."""
    started = await api.post("/start", json={}, headers={"Idempotency-Key": f"caller-{n}"})
    assert started.status_code == 201, started.text
    return started.json()["session_id"], started.json()["release"]


async def session_over(api: httpx.AsyncClient, session_id: str) -> None:
    """Waits for the session's end (its outcome is judged then)."""
    deadline = time.monotonic() + 2 * WAIT
    while (await api.get(f"/sessions/{session_id}")).json()["status"] not in ("ended", "failed"):
        if time.monotonic() > deadline:
            raise AssertionError(f"session {session_id} never ended")
        await asyncio.sleep(0.5)


# A caller on the line this long from connecting has a session past SHORT_SESSION_SECONDS from its
# start request: a shorter one counts as failed, and the canary would breach on failures instead.
ON_LINE_SECONDS = SHORT_SESSION_SECONDS + 0.5


async def stay_past_short_session(client: WebRTCClient) -> None:
    """Keeps `client`'s caller on the line until ON_LINE_SECONDS after it connected (at once if it was)."""
    assert client.connected_at is not None, "not connected"
    await asyncio.sleep(ON_LINE_SECONDS - (time.monotonic() - client.connected_at))


def canary_weight(base_url: str) -> int:
    """The canary `next`'s weight, as `GET /releases` shows it (a keyless local dispatcher's)."""
    answer = httpx.get(f"{base_url}/releases", timeout=WAIT)
    return next(int(r["weight"]) for r in answer.json()["releases"] if r["name"] == "next")

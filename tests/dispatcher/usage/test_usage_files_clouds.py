"""The daily usage file in its own store (`USAGE_FILES`) on Cloud Storage and Azure Blob, built from
the settings as the dispatcher takes them: a `gs://` bucket against tests/fakes/gcs.py (its service
account's token, as Application Default Credentials find it) and an Azure container's URL against
azurite (strict, TLS, a managed identity's token: tests/fakes/azurite.py). Each store is checked at
start, the day's file is written whole and read back byte for byte as `voicefleet usage --csv` gives
it, and written again whole when the day's sums change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

import pytest

from dispatcher.artifacts.building import build_store
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.artifacts.store import ArtifactStore
from dispatcher.usage.day_file import CONTENT_TYPE, day_csv
from dispatcher.usage.files_build import build_usage_files
from dispatcher.usage.rollups import Amount, MemoryRollups
from dispatcher.usage.usage_count import SessionUse
from tests.dispatcher.artifacts.test_azure_store import emulator  # noqa: F401  azurite, once per module
from tests.fakes.azurite import Azurite
from tests.fakes.gcs import FakeGcs
from tests.fakes.server import serve

DAY = date(2026, 11, 27)


def session(n: int, key: str) -> SessionUse:
    return SessionUse(f"s-{n}", DAY, key, "main", (Amount("", "sessions", 1.0), Amount("", "seconds", 60.0 + n),
                                                   Amount("", "machine_usd", 0.001 * n)))


async def written_twice(env: Mapping[str, str], tmp_path: Path, recordings: ArtifactStore | None = None,
                        region: str = "") -> tuple[bytes, bytes, str]:
    """The day's file as the store gives it back after one write and after a session more, and its key.
    `recordings`: the recordings' store (`USAGE_FILES=recordings` writes beside them)."""
    rollups = MemoryRollups(keep_days=30)
    for n in range(3):
        await rollups.add(session(n, "team-a" if n % 2 else "team-b"))
    elsewhere = LocalFolderStore(tmp_path / "recordings", SignedPaths(b"k" * 32))  # not where the files go
    files = build_usage_files(env, rollups, object(), recordings or elsewhere, region=region)
    assert files is not None and files.store is (recordings or files.store) and files.store is not elsewhere
    try:
        await files.store.check()  # what the dispatcher checks at start
        assert await files.write_day(DAY)
        key = f"{files.store.prefix}/usage/{region + '/' if region else ''}{DAY.isoformat()}.csv"
        first = await files.store.get(key)
        assert first == day_csv(await rollups.grouped(DAY, DAY, "key", None))
        assert not await files.write_day(DAY)  # unchanged: not written again
        await rollups.add(session(3, "team-c"))
        assert await files.write_day(DAY)
        second = await files.store.get(key)
        assert second == day_csv(await rollups.grouped(DAY, DAY, "key", None))
        assert first is not None and second is not None
        return first, second, key
    finally:
        await files.aclose()


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    with serve(FakeGcs(buckets=("team-billing",))) as fake:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", fake.credentials_file)
        yield fake


async def test_the_daily_file_in_a_cloud_storage_bucket_of_its_own(gcs: FakeGcs, tmp_path: Path) -> None:
    first, second, key = await written_twice({**gcs.env, "USAGE_FILES": "gs://team-billing/voice"}, tmp_path)
    assert key == "voice/usage/2026-11-27.csv"
    stored = gcs.objects["team-billing"][key]
    assert stored.data == second and b"team-c" in second and b"team-c" not in first
    assert stored.content_type == CONTENT_TYPE


async def test_the_daily_file_in_an_azure_container_of_its_own(
        emulator: Azurite, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    container = f"billing-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(emulator.create_container, container)
    env = {**emulator.identity_env, "USAGE_FILES": emulator.destination(container, "voice")}
    first, second, key = await written_twice(env, tmp_path)
    assert key == "voice/usage/2026-11-27.csv"
    assert b"team-c" in second and b"team-c" not in first


async def test_the_daily_file_beside_the_recordings_in_a_cloud_storage_bucket_per_region(
        gcs: FakeGcs, tmp_path: Path) -> None:
    env = {**gcs.env, "RECORDING_DESTINATION": "gs://team-billing/calls", "USAGE_FILES": "recordings"}
    recordings = build_store(ArtifactSettings.from_env(env), env)
    try:
        _, second, key = await written_twice(env, tmp_path, recordings, region="eu")
    finally:
        await recordings.aclose()  # type: ignore[attr-defined]
    assert key == "calls/usage/eu/2026-11-27.csv" and gcs.objects["team-billing"][key].data == second


async def test_the_daily_file_beside_the_recordings_in_an_azure_container_per_region(
        emulator: Azurite, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    container = f"calls-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(emulator.create_container, container)
    env = {**emulator.identity_env, "AZURE_CLIENT_ID": "0b1f2c3d-0000-4000-8000-000000000002",
           "RECORDING_DESTINATION": emulator.destination(container, "calls"), "USAGE_FILES": "recordings"}
    recordings = build_store(ArtifactSettings.from_env(env), env)
    try:
        _, second, key = await written_twice(env, tmp_path, recordings, region="eu")
    finally:
        await recordings.aclose()  # type: ignore[attr-defined]
    assert key == "calls/usage/eu/2026-11-27.csv" and b"team-c" in second

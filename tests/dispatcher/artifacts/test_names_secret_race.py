"""Two dispatchers starting at once on one bucket keep one key names' secret: each reads none, each
writes one, and the bucket's conditional create (S3's `If-None-Match: *` on moto, GCS's
`x-goog-if-generation-match: 0` on the fake, Azure's `If-None-Match: *` on azurite) keeps the
first; both read that one back. The real stores are held in the order that lost a secret: both read
none, the first writes and reads its own back, then the second writes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from dispatcher.artifacts import building, names_secret
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.signed_paths import SignedPaths
from tests.support.cloud_stores import CloudStore, azure_store, gs_store, s3_store

pytestmark = pytest.mark.slow  # moto's S3 server, the GCS fake or azurite, each in a process of its own


@pytest.fixture(params=[s3_store, gs_store, azure_store], ids=["s3", "gcs", "azure"])
def bucket(request: pytest.FixtureRequest) -> Iterator[CloudStore]:
    store: Callable[[], AbstractContextManager[CloudStore]] = request.param
    with store() as started:
        yield started


def test_two_dispatchers_starting_at_once_on_one_bucket_keep_one_names_secret(
        bucket: CloudStore, monkeypatch: pytest.MonkeyPatch) -> None:
    both_read, first_done = threading.Barrier(2, timeout=60), threading.Event()
    built, order = building.build_store, iter(range(2))

    def held(*args: Any, **kwargs: Any) -> Any:
        """The real store, its first read held until both have read, the second start's write until
        the first start has read its own back (the order that lost a secret)."""
        store, second, reads = built(*args, **kwargs), next(order) == 1, [0]
        read = store.get

        async def get(key: str) -> bytes | None:
            value = await read(key)
            reads[0] += 1
            if reads[0] == 1:
                await asyncio.to_thread(both_read.wait)
            elif not second:
                first_done.set()
            return value
        store.get = get
        for name in ("put", "put_new"):
            write = getattr(store, name, None)
            if write is not None:
                setattr(store, name, after_first(write) if second else write)
        return store

    def after_first(write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def written(*args: Any) -> Any:
            await asyncio.to_thread(first_done.wait, 60)
            return await write(*args)
        return written

    monkeypatch.setattr(building, "build_store", held)
    kept: list[bytes | None] = [None, None]

    def start(index: int) -> None:
        kept[index] = names_secret.kept_names_secret({**bucket.env, "RECORDING": "on"})

    starts = [threading.Thread(target=start, args=(index,)) for index in range(2)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join(timeout=120)
    assert kept[0] is not None and kept[0] == kept[1], kept


async def test_a_folders_conditional_create_keeps_the_first_object(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    assert await store.put_new("voice/.names-secret", b"first", "text/plain") is True
    assert await store.put_new("voice/.names-secret", b"second", "text/plain") is False
    assert await store.get("voice/.names-secret") == b"first"
    assert [p.name for p in (tmp_path / "voice").iterdir()] == [".names-secret"]  # nothing half-written left

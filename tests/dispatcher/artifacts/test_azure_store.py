"""The Azure Blob store against azurite (tests/fakes/azurite.py: strict, TLS, OAuth): the dispatcher
signs in with a managed identity's token, gets a user delegation key, and signs the bot one
write-only SAS per part; azurite checks that SAS as Azure does (its signature, blob, permission
and expiry)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from botchannel.recording import MIN_PART_BYTES, wav_header, wav_sizes
from dispatcher.artifacts.azure_store import KEY_REFRESH_SECONDS, AzureBlobStore
from dispatcher.artifacts.store import StoreError
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from tests.fakes.azure_legal_hold import legal_holds
from tests.fakes.azurite import Azurite, azurite, missing


@pytest.fixture(scope="module")
def emulator() -> Iterator[Azurite]:
    if (why := missing()) is not None:
        pytest.skip(why)
    with azurite() as running:
        yield running


@pytest.fixture
async def store(emulator: Azurite) -> AsyncIterator[AzureBlobStore]:
    """A container of its own, made by the operator (the stacks), and the dispatcher's store on it."""
    container = f"calls-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(emulator.create_container, container)
    store = AzureBlobStore(emulator.destination(container, "team"), emulator.identity_env)
    await store.check()
    yield store
    await store.aclose()


async def put(url: str, data: bytes, emulator: Azurite) -> httpx.Response:
    """The bot's PUT: the URL alone, no credential."""
    async with httpx.AsyncClient(timeout=30, verify=emulator.tls()) as client:
        return await client.put(url, content=data)


async def test_parts_put_through_their_urls_are_joined_and_given_their_true_wav_sizes(
        store: AzureBlobStore, emulator: Azurite) -> None:
    key = "team/2026/11/26/abc/recording.wav"
    upload = await store.open_upload(key, "audio/wav", {"key_name": "acme", "release": "v7"})
    first = wav_header(16000) + b"\x01\x00\x02\x00" * ((MIN_PART_BYTES - 44) // 4)
    last = b"\x03\x00\x04\x00" * 1000
    assert (await put(store.part_url(key, upload, 2, 60), last, emulator)).status_code == 201
    assert (await put(store.part_url(key, upload, 1, 60), first, emulator)).status_code == 201
    assert (await put(store.part_url(key, upload, 1, 60), first, emulator)).status_code == 201  # a checkpoint again
    assert [u.key for u in await store.open_uploads("team/")] == [key]

    parts = await store.parts(key, upload)
    assert [(p.number, p.size) for p in parts] == [(1, len(first)), (2, len(last))]
    await store.complete(key, upload, parts)
    await store.patch(key, wav_sizes(len(first) + len(last)), first_part=parts[0].size)

    body = await store.get(key)
    assert body is not None and len(body) == len(first) + len(last)
    with wave.open(io.BytesIO(body)) as wav:  # the header now tells the true length
        assert wav.getnframes() == (len(body) - 44) // 4
        assert wav.getnchannels() == 2
    assert body[-4000:] == last
    assert await store.open_uploads("team/") == []
    assert [(o.key, o.size) for o in await store.objects_under("team/2026/")] == [(key, len(body))]
    async with httpx.AsyncClient(timeout=30, verify=emulator.tls()) as client:
        downloaded = await client.get(store.download_url(key, 60))
    assert downloaded.status_code == 200 and downloaded.content == body
    assert downloaded.headers["content-type"] == "audio/wav"
    # The key name and release, the blob's metadata, survive the header's second commit.
    assert (downloaded.headers.get("x-ms-meta-key_name"), downloaded.headers.get("x-ms-meta-release")) == ("acme", "v7")


async def test_only_the_parts_that_arrived_are_completed(store: AzureBlobStore, emulator: Azurite) -> None:
    key = "team/gap/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    for part, data in ((1, b"a" * 100), (3, b"c" * 50)):
        assert (await put(store.part_url(key, upload, part, 60), data, emulator)).status_code == 201
    parts = await store.parts(key, upload)
    assert [p.number for p in parts] == [1, 3]
    await store.complete(key, upload, parts)
    assert await store.get(key) == b"a" * 100 + b"c" * 50


async def test_a_part_url_opens_nothing_but_its_own_blob_and_reads_nothing(
        store: AzureBlobStore, emulator: Azurite) -> None:
    key, other = "team/a/recording.wav", "team/b/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    other_upload = await store.open_upload(other, "audio/wav")
    url = store.part_url(key, upload, 1, 60)

    refused = await put(url.replace("/team/a/", "/team/b/"), b"x" * 100, emulator)
    assert refused.status_code == 403 and b"AuthorizationFailure" in refused.content
    blob, _, query = url.partition("?")
    sas = "&".join(p for p in query.split("&") if not p.startswith(("comp=", "blockid=")))
    async with httpx.AsyncClient(timeout=30, verify=emulator.tls()) as client:
        read = await client.get(f"{blob}?{sas}")
        blocks = await client.get(f"{blob}?comp=blocklist&blocklisttype=all&{sas}")
        listing = await client.get(f"{blob.split('/team/')[0]}?restype=container&comp=list&{sas}")
    assert [read.status_code, blocks.status_code, listing.status_code] == [403, 403, 403]
    assert await store.parts(other, other_upload) == []
    assert (await put(url, b"x" * 100, emulator)).status_code == 201  # the URL itself works


async def test_a_part_url_is_refused_once_it_expired(store: AzureBlobStore, emulator: Azurite) -> None:
    key = "team/c/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    url = store.part_url(key, upload, 1, 1)
    await asyncio.sleep(2.5)  # past its expiry (SAS times are whole seconds): only later under load, never earlier
    refused = await put(url, b"x" * 100, emulator)
    assert refused.status_code == 403
    assert await store.parts(key, upload) == []


async def test_an_aborted_upload_leaves_nothing_open(store: AzureBlobStore, emulator: Azurite) -> None:
    key = "team/d/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    assert (await put(store.part_url(key, upload, 1, 60), b"x" * 100, emulator)).status_code == 201
    assert [(u.key, u.upload_id) for u in await store.open_uploads("team/d/")] == [(key, upload)]
    assert await store.open_uploads("team/e/") == []
    await store.abort(key, upload)
    assert await store.open_uploads("team/") == []
    assert await store.objects_under("team/d/") == []  # its block was never committed: no object


async def test_objects_are_written_read_listed_and_erased(store: AzureBlobStore) -> None:
    for name in ("recording.wav", "report.json"):
        await store.put(f"team/e/{name}", b"{}", "application/json")
    assert await store.get("team/e/report.json") == b"{}"
    assert await store.get("team/e/nothing.json") is None
    assert {o.key for o in await store.objects_under("team/e/")} == {"team/e/recording.wav", "team/e/report.json"}
    await store.delete([o.key for o in await store.objects_under("team/e/")] + ["team/e/never-there"])
    assert await store.objects_under("team/e/") == []


async def test_a_legal_hold_azurite_cannot_set_is_refused_never_pretended(store: AzureBlobStore) -> None:
    """azurite has no immutability (Set Blob Legal Hold answers 501): the store says so and holds nothing."""
    await store.put("team/f/report.json", b"{}", "application/json")
    with pytest.raises(StoreError, match="legal hold.*version-level immutability"):
        await store.hold(["team/f/report.json"], True)
    assert await store.held(["team/f/report.json", "team/f/missing"]) == []
    await store.delete(["team/f/report.json"])


async def test_a_container_that_does_not_exist_is_a_clear_error(emulator: Azurite) -> None:
    store = AzureBlobStore(emulator.destination("no-such-container", ""), emulator.identity_env)
    with pytest.raises(StoreError, match="no-such-container.*ContainerNotFound"):
        await store.check()
    await store.aclose()


async def test_without_a_token_source_the_store_names_the_identity_it_needs(emulator: Azurite) -> None:
    env = {**emulator.identity_env, "IDENTITY_HEADER": "wrong"}
    store = AzureBlobStore(emulator.destination("calls", ""), env)
    with pytest.raises(StoreError, match="no Entra token"):
        await store.check()
    await store.aclose()


async def test_a_held_blob_is_held_and_never_deleted_until_its_hold_is_released(emulator: Azurite) -> None:
    """Behind tests/fakes/azure_legal_hold.py: a container with version-level immutability."""
    container = f"held-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(emulator.create_container, container)
    with legal_holds(emulator) as holds:
        store = AzureBlobStore(f"{holds.url}/{container}/team", emulator.identity_env)
        try:
            keys = ["team/g/recording.wav", "team/g/report.json"]
            for key in keys:
                await store.put(key, b"{}", "application/json")
            await store.hold(keys[:1], True)
            assert await store.held(keys) == keys[:1]
            with pytest.raises(StoreError, match="cannot delete team/g/recording.wav: it is under a legal hold"):
                await store.delete(keys)
            assert {o.key for o in await store.objects_under("team/g/")} == set(keys)  # nothing was erased
            with pytest.raises(StoreError, match="BlobNotFound"):
                await store.hold(["team/g/never-written"], True)
            await store.hold(keys[:1], False)
            assert await store.held(keys) == []
            await store.delete(keys)
            assert await store.objects_under("team/g/") == []
        finally:
            await store.aclose()


class KeyRefusing(HttpClient):
    """The dispatcher's own HTTP client, where Get User Delegation Key can be made to fail (503, as a
    throttled or failing storage front end answers) while every other call goes through."""

    refusing = False

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        if self.refusing and (kwargs.get("params") or {}).get("comp") == "userdelegationkey":
            return HttpResponse(503, {}, b"")
        return await super().request(method, url, **kwargs)


async def test_a_key_that_cannot_be_renewed_is_kept_while_it_has_days_left(emulator: Azurite) -> None:
    container = f"keys-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(emulator.create_container, container)
    now = [time.time()]
    client = KeyRefusing(timeout=30.0, ca_file=emulator.cert_path)
    store = AzureBlobStore(emulator.destination(container, "team"), emulator.identity_env, client=client,
                           clock=lambda: now[0])
    try:
        await store.check()
        client.refusing = True
        now[0] += KEY_REFRESH_SECONDS + 1  # due for renewal, which fails: the key it has still signs
        await store.put("team/h/report.json", b"{}", "application/json")
        async with httpx.AsyncClient(timeout=30, verify=emulator.tls()) as download:
            assert (await download.get(store.download_url("team/h/report.json", 60))).content == b"{}"
        now[0] += 4 * 24 * 3600.0  # past half its life: nothing is signed with a key about to end
        with pytest.raises(StoreError, match="get a user delegation key"):
            await store.put("team/h/report.json", b"{}", "application/json")
    finally:
        await store.aclose()

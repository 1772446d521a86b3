"""The GCS store against a fake that checks what GCS checks (tests/fakes/gcs.py): V4 signed part URLs
open one part of one upload for their lifetime, multipart's size rules hold, a hold stops a deletion.
The store signs in with a service account key file, as Application Default Credentials find it."""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from botchannel.recording import MIN_PART_BYTES, wav_header, wav_sizes
from dispatcher.artifacts.building import build_store
from dispatcher.artifacts.gcs_store import REWRITES_AT_ONCE, GcsStore
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.store import Part, StoreError
from tests.fakes.gcs import FakeGcs
from tests.fakes.server import serve


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    with serve(FakeGcs()) as fake:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", fake.credentials_file)
        yield fake


@pytest.fixture
async def store(gcs: FakeGcs) -> AsyncIterator[GcsStore]:
    store = GcsStore("team-calls", "team", gcs.env)
    yield store
    await store.aclose()


async def put(url: str, data: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.put(url, content=data)


def audio(size: int, fill: bytes = b"\x01\x00\x02\x00") -> bytes:
    return fill * (size // 4)


async def test_parts_put_through_their_urls_are_joined_and_given_their_true_wav_sizes(store: GcsStore,
                                                                                       gcs: FakeGcs) -> None:
    key = "team/2026/11/26/abc/recording.wav"
    await store.check()
    upload = await store.open_upload(key, "audio/wav", {"key_name": "acme", "release": "v7"})
    first = wav_header(16000) + audio(MIN_PART_BYTES - 44)
    middle = audio(MIN_PART_BYTES, b"\x05\x00\x06\x00")
    last = audio(4000, b"\x03\x00\x04\x00")
    for number, data in ((1, first), (2, middle), (3, last)):
        assert (await put(store.part_url(key, upload, number, 60), data)).status_code == 200

    gcs.page_size = 2  # the parts' and the uploads' listings are walked page by page
    parts = await store.parts(key, upload)
    assert [(p.number, p.size) for p in parts] == [(1, len(first)), (2, len(middle)), (3, len(last))]
    (open_upload,) = await store.open_uploads("team/")
    assert (open_upload.key, open_upload.upload_id) == (key, upload)
    assert abs(open_upload.started_at - time.time()) < 600  # its start, for the sweep of abandoned uploads
    await store.complete(key, upload, parts)
    total = len(first) + len(middle) + len(last)
    await store.patch(key, wav_sizes(total), first_part=parts[0].size)

    body = await store.get(key)
    assert body is not None and len(body) == total
    with wave.open(io.BytesIO(body)) as wav:  # the header now tells the true length
        assert wav.getnframes() == (total - 44) // 4
        assert wav.getnchannels() == 2
    assert body[len(first):len(first) + len(middle)] == middle and body[-4000:] == last
    assert await store.open_uploads("team/") == []  # the header's own rewrite left nothing open
    # The key name and release, the objects' custom metadata, survive the header's rewrite.
    assert gcs.objects["team-calls"][key].metadata == {"x-goog-meta-key_name": "acme", "x-goog-meta-release": "v7"}


async def test_a_single_part_recording_is_patched_in_one_write(store: GcsStore) -> None:
    key = "team/one/recording.wav"
    upload = await store.open_upload(key, "audio/wav", {"key_name": "acme"})
    data = wav_header(8000) + audio(4000)
    assert (await put(store.part_url(key, upload, 1, 60), data)).status_code == 200
    parts = await store.parts(key, upload)
    await store.complete(key, upload, parts)
    await store.patch(key, wav_sizes(len(data)), first_part=parts[0].size)
    with wave.open(io.BytesIO(await store.get(key) or b"")) as wav:
        assert wav.getnframes() == 1000
    assert (await store._xml("HEAD", key, "read it")).headers.get("x-goog-meta-key_name") == "acme"


async def test_recordings_ending_together_are_rewritten_a_few_at_a_time(store: GcsStore, gcs: FakeGcs) -> None:
    """Each header's rewrite holds its first part and a chunk in memory: sessions that end together
    (a campaign's calls) must not hold them all at once."""
    keys = [f"team/together/{n}/recording.wav" for n in range(REWRITES_AT_ONCE + 2)]
    data = wav_header(16000) + audio(MIN_PART_BYTES - 44) + audio(4000)
    for key in keys:
        await store.put(key, data, "audio/wav")
    await asyncio.gather(*(store.patch(key, wav_sizes(len(data)), first_part=MIN_PART_BYTES) for key in keys))
    assert gcs.most_uploads_open <= REWRITES_AT_ONCE
    for key in keys:
        with wave.open(io.BytesIO(await store.get(key) or b"")) as wav:
            assert wav.getnframes() == (len(data) - 44) // 4


async def test_a_part_url_opens_nothing_but_its_own_part(store: GcsStore, gcs: FakeGcs) -> None:
    key, other = "team/a/recording.wav", "team/b/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    other_upload = await store.open_upload(other, "audio/wav")
    url = store.part_url(key, upload, 1, 60)

    another_object = url.replace("/team/a/", "/team/b/").replace(upload, other_upload)
    another_part = url.replace("partNumber=1", "partNumber=2")
    for altered in (another_object, another_part):
        refused = await put(altered, b"x" * 100)
        assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
    async with httpx.AsyncClient(timeout=30) as client:  # a part URL is no read permission either
        assert (await client.get(url)).status_code == 403
        assert (await client.get(store.download_url(key, 60))).status_code == 404  # signed, but nothing there yet
    assert await store.parts(other, other_upload) == []
    assert (await put(url, b"x" * 100)).status_code == 200  # the URL itself works
    assert [p.number for p in await store.parts(key, upload)] == [1]


async def test_a_part_url_is_refused_once_it_expired(store: GcsStore) -> None:
    key = "team/c/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    url = store.part_url(key, upload, 1, 1)
    await asyncio.sleep(2.5)  # past its expiry: only later under load, never earlier
    refused = await put(url, b"x" * 100)
    assert refused.status_code == 400 and b"ExpiredToken" in refused.content
    assert await store.parts(key, upload) == []


async def test_a_url_meant_to_live_over_a_week_is_refused_as_gcs_refuses_it(store: GcsStore) -> None:
    key = "team/c/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    refused = await put(store.part_url(key, upload, 1, 8 * 24 * 3600), b"x" * 100)
    assert refused.status_code == 400 and b"seven days" in refused.content
    assert (await put(store.part_url(key, upload, 1, 7 * 24 * 3600), b"x" * 100)).status_code == 200


async def test_completing_follows_the_part_size_rules(store: GcsStore) -> None:
    key = "team/small/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    for number in (1, 2):
        assert (await put(store.part_url(key, upload, number, 60), b"x" * 1000)).status_code == 200
    with pytest.raises(StoreError, match="EntityTooSmall"):  # a part but the last under 5 MiB
        await store.complete(key, upload, await store.parts(key, upload))
    with pytest.raises(StoreError, match="InvalidPart"):
        await store.complete(key, upload, [Part(1, 1000, '"not-its-etag"')])
    assert (await put(store.part_url(key, upload, 10_001, 60), b"x")).status_code == 400


async def test_a_completion_tried_again_after_its_answer_was_lost_is_a_success(store: GcsStore) -> None:
    """A try that timed out may have completed the upload: the retry meets NoSuchUpload, and the
    recording is there, whole: read as a failure, the report said it was missing and its header went unwritten."""
    key = "team/lost/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    data = wav_header(16000) + audio(4000)
    assert (await put(store.part_url(key, upload, 1, 60), data)).status_code == 200
    parts = await store.parts(key, upload)
    await store.complete(key, upload, parts)  # the try whose answer never came back
    await store.complete(key, upload, parts)  # the retry
    assert await store.get(key) == data
    with pytest.raises(StoreError, match="NoSuchUpload"):  # not a success for parts it did not join
        await store.complete(key, upload, [Part(1, len(data) + 1, parts[0].etag)])


async def test_an_aborted_upload_leaves_nothing_open(store: GcsStore) -> None:
    key = "team/d/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    assert (await put(store.part_url(key, upload, 1, 60), b"x" * 100)).status_code == 200
    await store.abort(key, upload)
    assert await store.open_uploads("team/") == []
    assert (await put(store.part_url(key, upload, 1, 60), b"x" * 100)).status_code == 404  # NoSuchUpload


async def test_objects_are_listed_read_through_a_download_url_and_erased(store: GcsStore, gcs: FakeGcs) -> None:
    for name in ("recording.wav", "report.json", "transcript.jsonl"):
        await store.put(f"team/e/{name}", b"{}", "application/json")
    gcs.page_size = 2
    assert {o.key for o in await store.objects_under("team/e/")} == {
        "team/e/recording.wav", "team/e/report.json", "team/e/transcript.jsonl"}
    assert await store.get("team/e/missing.json") is None
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(store.download_url("team/e/report.json", 60))).content == b"{}"
    await store.delete([o.key for o in await store.objects_under("team/e/")] + ["team/e/gone-already"])
    assert await store.objects_under("team/e/") == []


async def test_a_held_object_cannot_be_deleted_until_its_hold_is_released(store: GcsStore, gcs: FakeGcs) -> None:
    keys = ["team/f/recording.wav", "team/f/report.json"]
    for key in keys:
        await store.put(key, b"{}", "application/json")
    await store.hold(keys[:1], on=True)
    assert await store.held(keys + ["team/f/none"]) == keys[:1]
    with pytest.raises(StoreError, match="team/f/recording.wav: under a hold.*temporaryHold.*Nothing was deleted"):
        await store.delete(keys)
    assert {o.key for o in await store.objects_under("team/f/")} == set(keys)  # neither was deleted
    gcs.objects["team-calls"][keys[1]].temporary_hold = True  # a hold set behind the store's back: GCS refuses
    with pytest.raises(StoreError, match="under a hold"):
        await store._json("DELETE", keys[1], "delete objects")
    gcs.objects["team-calls"][keys[1]].temporary_hold = False
    await store.hold(keys[:1], on=False)
    assert await store.held(keys) == []
    await store.delete(keys)
    assert await store.objects_under("team/f/") == []


async def test_a_bucket_that_does_not_exist_is_a_clear_error(gcs: FakeGcs) -> None:
    store = GcsStore("no-such-bucket", "", gcs.env)
    with pytest.raises(StoreError, match="gs://no-such-bucket.*NoSuchBucket"):
        await store.check()
    await store.aclose()


async def test_credentials_google_refuses_are_a_clear_error(gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path) -> None:
    other = FakeGcs()  # another service account's key: the fake's token endpoint refuses its assertion
    other.url = gcs.url
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", other.credentials_file)
    store = GcsStore("team-calls", "", gcs.env)
    with pytest.raises(StoreError, match="sign-in failed"):
        await store.check()
    await store.aclose()
    other.close()


def test_a_gs_destination_builds_the_gcs_store_on_its_bucket_and_prefix() -> None:
    settings = ArtifactSettings.from_env({"RECORDING_DESTINATION": "gs://team-calls/voice/"})
    store = build_store(settings, {})
    assert isinstance(store, GcsStore)
    assert (store.bucket, store.prefix, store.where) == ("team-calls", "voice", "gs://team-calls/voice")
    assert store.endpoint == "https://storage.googleapis.com"


async def test_a_passing_failure_is_tried_again_and_a_lasting_one_is_a_clear_error(store: GcsStore,
                                                                                     gcs: FakeGcs) -> None:
    gcs.fail(503, times=2, method="PUT")
    await store.put("team/g/report.json", b"{}", "application/json")  # the third try lands
    assert await store.get("team/g/report.json") == b"{}"
    gcs.fail(503, times=3, method="PUT")
    with pytest.raises(StoreError, match="cannot write an object: 503"):
        await store.put("team/g/report.json", b"{}", "application/json")
    assert len(gcs.calls_to("PUT", "/team-calls/team/g/")) == 6  # 3 tries each, never more


"""The S3 store against moto's S3 server behind a check of pre-signed URLs as S3 makes it
(tests/fakes/s3_presigned.py): the bot's part URL opens one part of one upload, for its lifetime."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import wave

import httpx
import pytest

from botchannel.recording import MIN_PART_BYTES, wav_header, wav_sizes
from dispatcher.artifacts.s3_store import S3Store
from dispatcher.artifacts.store import StoreError


@pytest.fixture
async def store(s3_url: str) -> S3Store:
    """A bucket of its own (moto's buckets are the process's, whichever server asks)."""
    env = {"AWS_ENDPOINT_URL_S3": s3_url, "AWS_REGION": "us-east-1"}
    store = S3Store(f"calls-{uuid.uuid4().hex[:12]}", "team", env)
    await asyncio.to_thread(store._client.create_bucket, Bucket=store.bucket)
    return store


async def put(url: str, data: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.put(url, content=data)


async def test_a_part_put_through_its_url_is_joined_and_given_its_true_wav_sizes(store: S3Store) -> None:
    key = "team/2026/11/26/abc/recording.wav"
    tags = {"key_name": "acme", "release": "v7"}
    upload = await store.open_upload(key, "audio/wav", tags)
    first = wav_header(16000) + b"\x01\x00\x02\x00" * ((MIN_PART_BYTES - 44) // 4)
    last = b"\x03\x00\x04\x00" * 1000
    assert (await put(store.part_url(key, upload, 1, 60), first)).status_code == 200
    assert (await put(store.part_url(key, upload, 2, 60), last)).status_code == 200

    parts = await store.parts(key, upload)
    assert [(p.number, p.size) for p in parts] == [(1, len(first)), (2, len(last))]
    await store.complete(key, upload, parts)
    await store.patch(key, wav_sizes(len(first) + len(last)), first_part=parts[0].size, tags=tags)

    body = (await asyncio.to_thread(store._client.get_object, Bucket=store.bucket, Key=key))["Body"].read()
    # The rewrite is a new upload of the key: S3 copies no tags into it, so it is given them again.
    tagging = await asyncio.to_thread(store._client.get_object_tagging, Bucket=store.bucket, Key=key)
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == tags
    assert len(body) == len(first) + len(last)
    with wave.open(io.BytesIO(body)) as wav:  # the header now tells the true length
        assert wav.getnframes() == (len(body) - 44) // 4
        assert wav.getnchannels() == 2
    assert body[-4000:] == last
    assert await store.open_uploads("team/") == []


async def test_a_part_url_opens_nothing_but_its_own_part(store: S3Store) -> None:
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
        read = await client.get(url)
    assert read.status_code == 403
    assert await store.parts(other, other_upload) == []
    assert (await put(url, b"x" * 100)).status_code == 200  # the URL itself works


async def test_a_part_url_is_refused_once_it_expired(store: S3Store) -> None:
    key = "team/c/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    url = store.part_url(key, upload, 1, 1)
    await asyncio.sleep(2.5)  # past its expiry: only later under load, never earlier
    refused = await put(url, b"x" * 100)
    assert refused.status_code == 403 and b"Request has expired" in refused.content
    assert await store.parts(key, upload) == []


async def test_a_url_meant_to_live_over_a_week_is_refused_as_s3_refuses_it(store: S3Store) -> None:
    key = "team/c/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    refused = await put(store.part_url(key, upload, 1, 8 * 24 * 3600), b"x" * 100)
    assert refused.status_code == 403 and b"less than a week" in refused.content
    assert (await put(store.part_url(key, upload, 1, 7 * 24 * 3600), b"x" * 100)).status_code == 200
    await store.abort(key, upload)


async def test_an_aborted_upload_leaves_nothing_open(store: S3Store) -> None:
    key = "team/d/recording.wav"
    upload = await store.open_upload(key, "audio/wav")
    assert [u.key for u in await store.open_uploads("team/")] == [key]
    await store.abort(key, upload)
    assert await store.open_uploads("team/") == []


async def test_a_bucket_that_does_not_exist_is_a_clear_error(s3_url: str) -> None:
    store = S3Store("no-such-bucket", "", {"AWS_ENDPOINT_URL_S3": s3_url})
    with pytest.raises(StoreError, match="no-such-bucket.*NoSuchBucket"):
        await store.check()


async def test_erasure_deletes_every_listed_object(store: S3Store) -> None:
    for name in ("recording.wav", "report.json"):
        await store.put(f"team/e/{name}", b"{}", "application/json")
    assert {o.key for o in await store.objects_under("team/e/")} == {"team/e/recording.wav", "team/e/report.json"}
    await store.delete([o.key for o in await store.objects_under("team/e/")])
    assert await store.objects_under("team/e/") == []


async def test_objects_are_tagged_with_the_sessions_key_name_and_release(store: S3Store) -> None:
    tags = {"key_name": "acme support", "release": "v7"}
    await store.put("team/r/report.json", b"{}", "application/json", tags)
    key = "team/r/recording.wav"
    upload = await store.open_upload(key, "audio/wav", tags)
    assert (await put(store.part_url(key, upload, 1, 60), b"\0" * 100)).status_code == 200
    await store.complete(key, upload, await store.parts(key, upload))
    for tagged in ("team/r/report.json", key):
        answer = await asyncio.to_thread(store._client.get_object_tagging, Bucket=store.bucket, Key=tagged)
        assert {t["Key"]: t["Value"] for t in answer["TagSet"]} == tags


async def test_a_legal_hold_is_object_locks_and_a_bucket_without_it_names_the_stack_key(s3_url: str) -> None:
    env = {"AWS_ENDPOINT_URL_S3": s3_url, "AWS_REGION": "us-east-1"}
    locked = S3Store(f"held-{uuid.uuid4().hex[:12]}", "team", env)
    await asyncio.to_thread(locked._client.create_bucket, Bucket=locked.bucket, ObjectLockEnabledForBucket=True)
    keys = ["team/a/report.json", "team/a/transcript.jsonl"]
    for key in keys:
        await locked.put(key, b"{}", "application/json")
    assert await locked.held(keys) == []
    await locked.hold(keys[:1], True)
    assert await locked.held(keys) == keys[:1]
    await locked.hold(keys[:1], False)
    assert await locked.held(keys) == []

    plain = S3Store(f"plain-{uuid.uuid4().hex[:12]}", "team", env)
    await asyncio.to_thread(plain._client.create_bucket, Bucket=plain.bucket)
    await plain.put(keys[0], b"{}", "application/json")
    assert await plain.held(keys) == []  # nothing can be held there: an erasure goes ahead
    with pytest.raises(StoreError, match="recordingHold"):
        await plain.hold(keys[:1], True)


async def test_the_write_check_leaves_nothing_behind_and_learns_whether_the_bucket_keeps_versions(
        store: S3Store) -> None:
    await store.check()
    listed = await asyncio.to_thread(store._client.list_objects_v2, Bucket=store.bucket)
    assert listed.get("Contents", []) == []  # `team/.voicefleet-write-check` is gone again
    assert store.versioned is False
    await asyncio.to_thread(store._client.put_bucket_versioning, Bucket=store.bucket,
                            VersioningConfiguration={"Status": "Enabled"})
    await store.check()
    assert store.versioned is True


async def test_an_erasure_on_a_versioned_bucket_says_the_versions_stay_until_the_lifecycle(store: S3Store) -> None:
    from dispatcher.artifacts.reading import ArtifactReader

    await asyncio.to_thread(store._client.put_bucket_versioning, Bucket=store.bucket,
                            VersioningConfiguration={"Status": "Enabled"})
    await store.check()
    folder = "team/retain-forever/2026/11/27/0123456789abcdef01234567/"
    await store.put(folder + "report.json", b"{}", "application/json")
    await store.put("team/retain-forever/sessions/0123456789abcdef01234567.json",
                    json.dumps({"folder": folder}).encode(), "application/json")
    record = await ArtifactReader(store, 300).erase("0123456789abcdef01234567", "support")
    assert record is not None and "keeps versions" in record["versions"]
    versions = await asyncio.to_thread(store._client.list_object_versions, Bucket=store.bucket, Prefix=folder)
    assert [v["Key"] for v in versions["Versions"]] == [folder + "report.json"]  # what the record warns of

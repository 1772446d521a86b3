"""Finding: after a local dispatcher restarted, a session's own key got 404 on its artifacts (an
admin key still read them). A named key's sessions are bound to an owner key derived from the name
and the deployment's secret, and a local dispatcher without BOT_CHANNEL_TOKEN drew that secret anew
at each run: its recordings outlived the secret that made them the name's. The secret that binds
names is now kept with the recordings it protects (the folder store's own, 0600), so the name owns
them after a restart too. The dispatcher in-process, twice on one folder; the test plays the bot's
upload through the signed path a bot gets."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from dispatcher.artifacts.names_secret import SECRET_FILE
from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import MakeDispatcher
from tests.support.cloud_stores import s3_client, s3_store

KEY, ADMIN = "named-client-key-0123456789abc", "admin-key-0123456789abcdef"
MINE, ADMINS = {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {ADMIN}"}


def keyed() -> Settings:
    key = hash_api_key(KEY)
    return Settings(api_key_hashes=frozenset({key}), api_key_names=((key, "acme"),),
                    admin_key_hashes=frozenset({hash_api_key(ADMIN)}), max_concurrent_sessions=50)


async def recorded(api: httpx.AsyncClient, recordings: object) -> str:
    """A session of `acme` whose recording holds one small part, completed."""
    started = await api.post("/start", json={"body": {}}, headers=MINE)
    assert started.status_code == 201, started.text
    session_id = str(started.json()["session_id"])
    url = (await recordings.part_url(session_id, {"part": 1}))["url"]  # type: ignore[attr-defined]
    part = b"RIFF" + b"\0" * 40 + b"\1\0\2\0" * 100
    if url.startswith("/"):  # the folder store's signed path, at the dispatcher
        assert (await api.put(url, content=part)).status_code == 200
    else:  # a bucket's pre-signed URL
        async with httpx.AsyncClient(timeout=30) as bucket:
            assert (await bucket.put(url, content=part)).status_code == 200
    await recordings.bot_finished(session_id, {"parts": 1, "bytes": 444, "degraded": []})  # type: ignore[attr-defined]
    await recordings.finish(session_id, "the bot ended the session (test)")  # type: ignore[attr-defined]
    return session_id


async def test_a_named_keys_artifacts_stay_its_own_after_a_local_restart(
        make_dispatcher: MakeDispatcher, tmp_path: Path) -> None:
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path / "recordings")}
    first = await make_dispatcher(keyed(), **env)
    session_id = await recorded(first.client, first.state.artifacts.recordings)
    assert (await first.client.get(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200
    await first.client.delete(f"/sessions/{session_id}", headers=MINE)

    again = await make_dispatcher(keyed(), **env)  # the same deployment, run again
    assert (await again.client.get(f"/sessions/{session_id}/artifacts", headers=ADMINS)).status_code == 200
    read = await again.client.get(f"/sessions/{session_id}/artifacts", headers=MINE)
    assert read.status_code == 200, read.text
    kept = tmp_path / "recordings" / SECRET_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # the secret, readable by the dispatcher's user alone


async def test_a_named_keys_artifacts_stay_its_own_after_a_local_restart_with_an_s3_store(
        make_dispatcher: MakeDispatcher) -> None:
    with s3_store() as bucket:
        first = await make_dispatcher(keyed(), RECORDING="on", **bucket.env)
        session_id = await recorded(first.client, first.state.artifacts.recordings)
        await first.client.delete(f"/sessions/{session_id}", headers=MINE)

        again = await make_dispatcher(keyed(), RECORDING="on", **bucket.env)  # the same deployment, run again
        read = await again.client.get(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert read.status_code == 200, read.text
        kept = s3_client(bucket.env["AWS_ENDPOINT_URL_S3"]).get_object(Bucket="team-calls", Key=f"voice/{SECRET_FILE}")
        assert len(kept["Body"].read()) == 64  # beside the retention folders, which lifecycle rules expire

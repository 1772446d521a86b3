"""`GET`/`DELETE /sessions/{id}/artifacts`, the recording policy at `POST /start`, and a recordings
store the dispatcher cannot write: the dispatcher in-process, its bots the stand-in, the test
playing the bot's part of an upload through the same signed path a bot gets."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from botchannel.contract import RequestFailed
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.conftest import API_KEY, STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from tests.support.file_limit import small_files

OTHER_KEY, ADMIN_KEY = "another-key-987654321", "admin-key-0123456789abc"
MINE, THEIRS, ADMIN = ({"Authorization": f"Bearer {key}"} for key in (API_KEY, OTHER_KEY, ADMIN_KEY))


@asynccontextmanager
async def dispatcher(env: dict[str, str], *, keyed: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)})) if keyed else Settings()
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    app = create_app(settings, env=env, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as client:
        try:
            yield client
        finally:
            await app.state.voicefleet.aclose()


def other_object(url: str, name: str) -> str:
    """The same signed URL, its claims changed to name another object, its MAC kept."""
    base, token = url.rsplit("/", 1)
    body, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["key"] = claims["key"].rsplit("/", 1)[0] + "/" + name
    altered = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{base}/{altered}.{mac}"


async def recorded_session(api: httpx.AsyncClient) -> str:
    """A session whose recording holds one small part, completed (the test plays its bot's upload)."""
    session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
    recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
    url = (await recordings.part_url(session_id, {"part": 1}))["url"]
    assert (await api.put(url, content=b"RIFF" + b"\0" * 40 + b"\1\0\2\0" * 100)).status_code == 200
    await recordings.bot_finished(session_id, {"parts": 1, "bytes": 444, "degraded": []})
    report = await recordings.finish(session_id, "the bot ended the session (test)")
    assert report is not None and report["recording"]["status"] == "complete"
    return str(session_id)


async def test_the_owner_lists_its_sessions_artifacts_with_urls_that_read_them(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = await recorded_session(api)
        listing = await api.get(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert listing.status_code == 200, listing.text
        artifacts = {a["name"]: a for a in listing.json()["artifacts"]}
        assert set(artifacts) == {"recording.wav", "report.json"}
        wav = await api.get(artifacts["recording.wav"]["url"])  # no key: the signed URL is the permission
        assert wav.status_code == 200 and len(wav.content) == 444
        assert int.from_bytes(wav.content[40:44], "little") == 400  # its true data size
        report = json.loads((await api.get(artifacts["report.json"]["url"])).content)
        assert report["session_id"] == session_id and report["recording"]["seconds"] == 0.006
        assert (await api.get(other_object(artifacts["recording.wav"]["url"], "report.json"))).status_code == 403
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=THEIRS)).status_code == 404
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=ADMIN)).status_code == 200


async def test_erasure_removes_every_object_of_the_session_and_leaves_an_audit_record(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = await recorded_session(api)
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=THEIRS)).status_code == 404
        erased = await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert erased.status_code == 200, erased.text
        assert len(erased.json()["erased"]) == 2
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 404
        left = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
        assert [name for name in left if session_id in name] == [next(n for n in left if n.startswith("erasures/"))]
        audit = json.loads(next(tmp_path.glob("erasures/*/*/*/*.json")).read_text())
        assert audit["session_id"] == session_id and audit["by"] and not any("wav" in k for k in audit)
        timeline = (await api.get(f"/sessions/{session_id}/timeline", headers=MINE)).json()["events"]
        assert any(e["event"] == "artifacts_erased" for e in timeline)


async def test_a_start_may_turn_recording_off_but_never_on(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING_DESTINATION": str(tmp_path)}) as api:
        refused = await api.post("/start", json={"recording": "on", "body": {}}, headers=MINE)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "recording_not_allowed"
        assert "RECORDING=off" in refused.json()["error"]["message"]
        assert "audio=on (policy: off)" in refused.json()["error"]["message"]
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        started = await api.post("/start", json={"recording": "off", "body": {}}, headers=MINE)
        session_id = started.json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        assert not recordings.recorded(session_id)
        timeline = (await api.get(f"/sessions/{session_id}/timeline", headers=MINE)).json()["events"]
        assert any(e["event"] == "recording_off" for e in timeline)


async def test_a_part_a_full_disk_refused_is_shown_in_status(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        url = (await recordings.part_url(session_id, {"part": 1}))["url"]
        with small_files(4096):  # the disk has room for less than the part
            refused = await api.put(url, content=b"RIFF" + b"\0" * 8192)
        assert refused.status_code == 503, refused.text
        status = (await api.get("/status", headers=ADMIN)).json()
        assert "File too large" in status["recordings"]["error"]


async def test_a_folder_it_cannot_write_is_shown_in_status_and_calls_still_start(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(blocked / "recordings")}) as api:
        status = (await api.get("/status", headers=ADMIN)).json()
        assert status["recordings"]["policy"] == "on"
        assert "cannot write to the folder" in status["recordings"]["error"]
        started = await api.post("/start", json={}, headers=MINE)
        assert started.status_code == 201
        timeline = (await api.get(f"/sessions/{started.json()['session_id']}/timeline", headers=MINE)).json()
        skipped = next(e for e in timeline["events"] if e["event"] == "recording_skipped")
        assert skipped["code"] == "store_missing" and "cannot write to the folder" not in skipped["reason"]


async def test_a_session_still_being_recorded_is_not_erased_until_it_ends(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        await recordings.part_url(session_id, {"part": 1})  # its upload is open
        refused = await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert refused.status_code == 409
        assert f"DELETE /sessions/{session_id}" in refused.json()["error"]["message"]
        await recordings.finish(session_id, "the bot ended the session (test)")
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200


async def test_an_admins_read_and_erasure_of_anothers_artifacts_are_on_the_audit_trail(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = await recorded_session(api)
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200
        assert (await api.get("/audit/sessions", headers=ADMIN)).json() == {"lines": []}  # the owner's own
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=ADMIN)).status_code == 200
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=ADMIN)).status_code == 200
        lines = (await api.get("/audit/sessions", headers=ADMIN)).json()["lines"]
        assert [(line["action"], line["session_id"]) for line in reversed(lines)] == [
            ("session.artifacts.read", session_id), ("session.artifacts.erase", session_id)]


async def test_a_part_put_with_a_path_that_is_not_signed_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        url = (await recordings.part_url(session_id, {"part": 1}))["url"]
        forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        sent = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(64):
                sent += 1
                yield b"\0" * (1024 * 1024)

        refused = await api.put(forged, content=body(), headers={"Content-Length": str(64 * 1024 * 1024)})
        assert sent <= 1  # the stranger's 64 MiB were never taken in
        assert refused.status_code == 403 and "recording.part" in refused.json()["error"]["message"]
        await recordings.finish(session_id, "the bot ended the session (test)")


async def test_a_session_whose_upload_another_replica_holds_open_is_not_erased(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = await recorded_session(api)
        artifacts = api._transport.app.state.voicefleet.artifacts  # type: ignore[attr-defined]
        folder = await artifacts.reader.folder(session_id)
        # The upload another replica holds open for this session:
        upload_id = await artifacts.reader.store.open_upload(folder + "recording.wav", "audio/wav")
        refused = await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "recording_in_progress"
        assert refused.headers["retry-after"] == "5"  # its stop may be under way there: ask again
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200  # all kept
        await artifacts.reader.store.abort(folder + "recording.wav", upload_id)
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200


async def test_a_started_sessions_bot_may_not_ask_for_parts_past_its_longest_call(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        with pytest.raises(RequestFailed, match="the most the session's longest call fills"):
            await recordings.part_url(session_id, {"part": 10_000})  # S3's last: hours past MAX_SESSION_SECONDS
        await recordings.finish(session_id, "the bot ended the session (test)")


async def test_a_signed_path_of_any_text_is_refused_not_a_server_error(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        for forged in ("e30.%C3%A9", "%C3%A9.abc", "e30."):
            read = await api.get(f"/recordings/files/{forged}")
            assert read.status_code == 403 and read.json()["error"]["code"] == "invalid_download_url", forged
            put = await api.put(f"/bots/recordings/parts/{forged}", content=b"\0" * 16)
            assert put.status_code == 403 and put.json()["error"]["code"] == "invalid_part_url", forged

"""Legal holds (`PUT`/`DELETE /sessions/{id}/artifacts/hold`): an admin key's alone, on the audit
trail, and an erasure refused while one is on; erasure is the owner's or an admin's, never a third
key's. The dispatcher in-process on the local folder store, the test playing the bot's upload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.dispatcher.api.test_artifacts_api import ADMIN, MINE, THEIRS, dispatcher, recorded_session


async def test_a_held_session_is_not_erased_until_an_admin_lifts_the_hold(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = await recorded_session(api)
        hold = f"/sessions/{session_id}/artifacts/hold"
        refused = await api.put(hold, headers=MINE)  # the session's own key is no admin
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
        held = await api.put(hold, headers=ADMIN)
        assert held.status_code == 200, held.text
        assert held.json()["held"] is True and len(held.json()["objects"]) == 3  # recording, report, index
        assert list(tmp_path.glob(".holds/retain-forever/*/*/*/*/recording.wav"))

        erase = await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert erase.status_code == 409 and erase.json()["error"]["code"] == "artifacts_held"
        assert f"DELETE {hold}" in erase.json()["error"]["message"]
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=ADMIN)).status_code == 409
        assert (await api.get(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200  # still read

        assert (await api.delete(hold, headers=ADMIN)).json()["held"] is False
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200
        lines = (await api.get("/audit/sessions", headers=ADMIN)).json()["lines"]
        assert [line["action"] for line in reversed(lines)] == [  # the admin's refused erasure was asked, so on it
            "session.artifacts.hold", "session.artifacts.erase", "session.artifacts.release"]
        events = await timeline_with(api, session_id, "artifacts_erased")
        assert events.index("artifacts_held") < events.index("artifacts_released") < events.index("artifacts_erased")


async def timeline_with(api: httpx.AsyncClient, session_id: str, event: str) -> list[str]:
    """The session's timeline events once `event` is among them (the timeline is written in the background)."""
    for _ in range(100):
        answer = await api.get(f"/sessions/{session_id}/timeline", headers=MINE)
        events = [e["event"] for e in answer.json()["events"]]
        if event in events:
            return events
        await asyncio.sleep(0.05)
    return events


async def test_a_hold_on_a_session_that_kept_nothing_is_a_404(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        missing = await api.put("/sessions/0123456789abcdef01234567/artifacts/hold", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_artifacts"


async def test_erasure_is_the_owners_or_an_admins_and_a_third_keys_is_a_404(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        first, second = await recorded_session(api), await recorded_session(api)
        stranger = await api.delete(f"/sessions/{first}/artifacts", headers=THEIRS)
        assert stranger.status_code == 404
        assert (await api.get(f"/sessions/{first}/artifacts", headers=MINE)).status_code == 200  # untouched
        assert (await api.delete(f"/sessions/{first}/artifacts", headers=MINE)).json()["by"]
        by_admin = await api.delete(f"/sessions/{second}/artifacts", headers=ADMIN)
        assert by_admin.status_code == 200 and by_admin.json()["by"].startswith("admin-")


async def test_a_hold_on_a_session_still_being_recorded_is_refused_until_it_ends(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        url = (await recordings.part_url(session_id, {"part": 1}))["url"]  # its index written, its upload open
        assert (await api.put(url, content=b"RIFF" + b"\0" * 40 + b"\1\0\2\0" * 100)).status_code == 200
        hold = f"/sessions/{session_id}/artifacts/hold"
        refused = await api.put(hold, headers=ADMIN)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "recording_in_progress"
        assert "then hold its artifacts" in refused.json()["error"]["message"]
        assert not list(tmp_path.glob(".holds/**/*.json"))  # nothing half held

        await recordings.bot_finished(session_id, {"parts": 1, "bytes": 444, "degraded": []})
        await recordings.finish(session_id, "the bot ended the session (test)")
        held = await api.put(hold, headers=ADMIN)
        assert held.status_code == 200 and len(held.json()["objects"]) == 3  # recording, report, index


async def test_a_session_is_not_erased_while_its_bots_part_url_could_write_its_recording_back(tmp_path: Path) -> None:
    async with dispatcher({"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}) as api:
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        recordings.store.part_urls_outlive_uploads = True  # as Azure's: the part SAS also takes Put Blob
        session_id = await recorded_session(api)
        refused = await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "recording_in_progress"
        assert "can still write its recording" in refused.json()["error"]["message"]
        assert 0 < int(refused.headers["retry-after"]) <= 300  # RECORDING_PART_URL_SECONDS
        recordings._writable[session_id] = 0.0  # its last part URL has expired
        assert (await api.delete(f"/sessions/{session_id}/artifacts", headers=MINE)).status_code == 200

"""`voicefleet artifacts list|get|delete ID` and `voicefleet session ID --transcript` against the real
dispatcher app, served on a loopback port, recording into its local folder store: the session's
upload, transcript and log lines played through the same methods its bot calls, then read back by
the command through the download URLs the dispatcher signs. Errors in one line; no key printed."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from botchannel.recording import wav_header
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.conftest import API_KEY, STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving
from voicefleet.artifact_files import inside
from voicefleet.errors import Failed
from voicefleet.main import voicefleet

OTHER_KEY, ADMIN_KEY = "another-key-5f1c2a9e0d", "admin-key-artifacts-8c3e1b7a42"
KEYS = (API_KEY, OTHER_KEY, ADMIN_KEY)
TURNS = [{"who": "caller", "text": "what time do you open", "start": 0.42, "end": 1.9},
         {"who": "bot", "text": "We open at nine.", "start": 2.61, "end": 4.05, "latency": 0.71,
          "interrupted": False},
         {"who": "caller", "text": "and on sundays", "start": 4.3, "end": 5.2},
         {"who": "bot", "text": "On Sundays we", "start": 5.83, "end": 6.4, "latency": 0.63, "interrupted": True}]
LOG_LINES = [{"time": "2026-11-27T02:14:03.118+00:00", "level": "info", "logger": "bot.webrtc_mode",
              "message": "session served"}]


class Dispatcher:
    def __init__(self, app: Any, url: str, folder: Path) -> None:
        self.app, self.url, self.folder = app, url, folder

    @property
    def state(self) -> Any:
        return self.app.state.voicefleet

    async def start(self, key: str = API_KEY, **body: Any) -> str:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            started = await http.post("/start", json=body, headers={"Authorization": f"Bearer {key}"})
        assert started.status_code == 201, started.text
        return str(started.json()["session_id"])

    async def recorded(self, turns: list[dict[str, Any]] = TURNS) -> str:
        """A session whose bot uploaded one part and handed over its turns and log lines, ended."""
        session_id = await self.start()
        recordings = self.state.artifacts.recordings
        url = self.url + (await recordings.part_url(session_id, {"part": 1}))["url"]
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.put(url, content=wav_header(16000) + b"\1\0\2\0" * 1600)).status_code == 200
        await recordings.bot_logs(session_id, {"lines": LOG_LINES, "dropped": 0})
        await recordings.bot_finished(session_id, {"parts": 1, "bytes": 6444, "degraded": [], "transcript": turns})
        assert (await recordings.finish(session_id, "the bot ended the session"))["recording"]["status"] == "complete"
        return session_id


@pytest.fixture
async def dispatcher(tmp_path: Path) -> AsyncIterator[Dispatcher]:
    settings = Settings(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    folder = tmp_path / "recordings"
    app = create_app(settings, env={"RECORDING": "on", "RECORDING_DESTINATION": str(folder)}, machines=machines,
                     rooms=None)
    async with serving(app) as port:
        try:
            yield Dispatcher(app, f"http://127.0.0.1:{port}", folder)
        finally:
            await app.state.voicefleet.aclose()


async def run(dispatcher: Dispatcher, *args: str, key: str | None = API_KEY, admin: str | None = None,
              given: str | None = None) -> Result:
    """The command, in a thread (the dispatcher answers on this loop)."""
    env = {"VOICEFLEET_URL": dispatcher.url, "VOICEFLEET_API_KEY": key, "VOICEFLEET_ADMIN_KEY": admin}
    result = await asyncio.to_thread(CliRunner().invoke, voicefleet, list(args), input=given, env=env,
                                     prog_name="voicefleet")
    assert not any(secret in result.output for secret in KEYS)
    return result


def stored(dispatcher: Dispatcher, session_id: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in dispatcher.folder.glob(f"**/{session_id}/*")}


async def test_the_transcript_prints_each_turn_with_its_time_latency_and_barge_in(dispatcher: Dispatcher) -> None:
    session_id = await dispatcher.recorded()
    result = await run(dispatcher, "session", session_id, "--transcript")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "TIME    WHO     LATENCY  INTERRUPTED  TEXT",
        "0:00.4  caller  -        -            what time do you open",
        "0:02.6  bot     0.71s    no           We open at nine.",
        "0:04.3  caller  -        -            and on sundays",
        "0:05.8  bot     0.63s    yes          On Sundays we"]
    as_json = await run(dispatcher, "session", session_id, "--transcript", "--json")
    assert json.loads(as_json.stdout) == {"session_id": session_id, "turns": TURNS}


async def test_escapes_a_bot_put_in_its_turns_are_shown_never_run(dispatcher: Dispatcher) -> None:
    """A turn's text is the bot's to write: a terminal escape in it (a clipboard write, a link, a
    cleared screen) is printed as its escape, never sent to the terminal raw."""
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;https://evil.example/\x07docs\x1b]8;;\x07\x1b[2J\x9b31m"
    session_id = await dispatcher.recorded([{**TURNS[0], "text": "hello" + hostile}, *TURNS[1:]])
    result = await run(dispatcher, "session", session_id, "--transcript")
    assert result.exit_code == 0, result.output
    assert not any(c in result.output for c in "\x1b\x07\x9b"), repr(result.output)
    assert result.stdout.splitlines()[1].endswith(
        "hello\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]8;;https://evil.example/\\x07docs\\x1b]8;;\\x07\\x1b[2J\\x9b31m")


async def test_get_writes_every_object_as_stored_and_never_overwrites_unless_forced(
        dispatcher: Dispatcher, tmp_path: Path) -> None:
    session_id = await dispatcher.recorded()
    out = tmp_path / "downloads"
    result = await run(dispatcher, "artifacts", "get", session_id, "-o", str(out), admin=ADMIN_KEY)
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_bytes() for p in (out / session_id).iterdir()}
    assert written == stored(dispatcher, session_id)
    assert set(written) == {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json"}
    assert result.stdout.splitlines()[-1] == f"4 objects of session {session_id} written to {out / session_id}"
    report = json.loads(written["report.json"])
    assert report["kept"] == {"recording.wav": True, "transcript.jsonl": True, "logs.jsonl": True}
    assert (report["turns"]["p50"], report["turns"]["p95"]) == (0.63, 0.71)
    assert report["cost"]["provider"] == "local"  # the dispatcher's own reckoning, as GET /sessions/{id} has it

    again = await run(dispatcher, "artifacts", "get", session_id, "-o", str(out))
    assert again.exit_code == 2 and len(again.stderr.splitlines()) == 1
    assert "exists (an earlier download): --force to overwrite it" in again.stderr
    (out / session_id / "report.json").write_text("edited")
    forced = await run(dispatcher, "artifacts", "get", session_id, "-o", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / session_id / "report.json").read_bytes() == written["report.json"]


async def test_list_shows_each_object_and_its_size(dispatcher: Dispatcher) -> None:
    session_id = await dispatcher.recorded()
    result = await run(dispatcher, "artifacts", "list", session_id)
    assert result.exit_code == 0, result.output
    rows = dict(line.split() for line in result.stdout.splitlines()[1:])
    assert rows == {name: str(len(data)) for name, data in stored(dispatcher, session_id).items()}


async def test_an_expired_download_url_is_one_line_and_leaves_no_file(dispatcher: Dispatcher, tmp_path: Path) -> None:
    session_id = await dispatcher.recorded()
    later = itertools.count(time.time(), 1000)  # every signature checked 1,000 s after it was made
    dispatcher.state.artifacts.local.signer._clock = lambda: next(later)
    out = tmp_path / "downloads"
    result = await run(dispatcher, "artifacts", "get", session_id, "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"voicefleet: download_url_expired (HTTP 403): the download URL of {sorted(stored(dispatcher, session_id))[0]} "
        "no longer reads it (they last 300.0 s, or it was erased meanwhile): run the command again for fresh URLs"]
    assert not [p for p in out.rglob("*") if p.is_file()]


async def test_an_unknown_another_keys_or_unrecorded_session_is_one_line_naming_what_to_do(
        dispatcher: Dispatcher) -> None:
    mine = await dispatcher.recorded()
    unrecorded = await dispatcher.start(recording="off", body={})
    unknown = "0" * 24
    for session_id, key in ((unknown, API_KEY), (mine, OTHER_KEY)):
        result = await run(dispatcher, "artifacts", "list", session_id, key=key)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"voicefleet: not_found (HTTP 404): no session {session_id} for this key: check the id "
            "(`voicefleet sessions`), or set VOICEFLEET_ADMIN_KEY to read another key's session"]
    result = await run(dispatcher, "session", unrecorded, "--transcript")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"voicefleet: no_artifacts (HTTP 404): session {unrecorded} kept no artifacts (it was not recorded, or they "
        f"were erased): `voicefleet session {unrecorded}` shows its timeline, where recording_off or "
        "recording_skipped says why"]


async def test_delete_asks_first_then_erases_every_object(dispatcher: Dispatcher) -> None:
    session_id = await dispatcher.recorded()
    declined = await run(dispatcher, "artifacts", "delete", session_id, given="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    stored_before = stored(dispatcher, session_id)
    assert len(stored_before) == 4
    erased = await run(dispatcher, "artifacts", "delete", session_id, "--yes", admin=ADMIN_KEY, key=None)
    assert erased.exit_code == 0, erased.output
    lines = erased.stdout.splitlines()
    assert sorted(line.rsplit("/", 1)[-1] for line in lines[:-1]) == sorted(stored_before)
    assert lines[-1].startswith(f"4 objects of session {session_id} erased (by admin-")  # the key's id, never the key
    assert stored(dispatcher, session_id) == {}
    gone = await run(dispatcher, "artifacts", "list", session_id)
    assert gone.exit_code == 1 and "kept no artifacts" in gone.stderr


def test_a_name_that_would_lead_out_of_the_folder_is_never_written(tmp_path: Path) -> None:
    assert inside(tmp_path, "report.json") == tmp_path / "report.json"
    for name in ("../report.json", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(Failed, match="nothing was written"):
            inside(tmp_path, name)


def test_the_help_names_the_commands_as_they_are_typed() -> None:
    shown = " ".join(CliRunner().invoke(voicefleet, ["artifacts", "--help"]).output.split())
    assert "list, get (download), delete (erase)" in shown, shown
    # The top-level help's line for it, until the group is imported (src/voicefleet/lazy_group.py).
    assert "list, get (download), delete (erase)" in voicefleet.lazy["artifacts"][1]

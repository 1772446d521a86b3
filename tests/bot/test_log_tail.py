"""The bot host's last log lines (bot/log_tail.py): what a loguru handler at the session's level
keeps, bounded to the last lines and bytes with the older ones counted, and handed to the dispatcher
in requests that each fit the channel's frame, before `recording.finished`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from loguru import logger

from bot.log_tail import LogTail
from bot.recording.recorder import Recorder
from botchannel.contract import MAX_FRAME_BYTES, Request, encode
from botchannel.recording import LOG_CHUNK_BYTES, METHOD_RECORDING_FINISHED, METHOD_RECORDING_LOGS, RecordingPlan


def test_a_handler_keeps_its_levels_lines_with_their_traceback() -> None:
    tail = LogTail()
    handler = logger.add(tail.sink, level="INFO", format="{message}")
    try:
        logger.debug("below the level")
        logger.bind(session_id="s").info("the session is served")
        try:
            raise ValueError("a bad frame")
        except ValueError:
            logger.exception("the pipeline failed")
    finally:
        logger.remove(handler)
    lines = tail.lines()
    assert [(line["level"], line["message"].splitlines()[0]) for line in lines] == [
        ("info", "the session is served"), ("error", "the pipeline failed")]
    assert lines[0]["logger"] == __name__ and lines[0]["time"].endswith("+00:00")
    assert "ValueError: a bad frame" in lines[1]["message"]


def test_only_the_last_lines_within_both_bounds_are_kept_and_the_rest_counted() -> None:
    tail = LogTail(max_lines=3, max_bytes=10_000)
    for i in range(5):
        tail.add({"time": "t", "level": "info", "logger": "bot", "message": f"line {i}"})
    assert [line["message"] for line in tail.lines()] == ["line 2", "line 3", "line 4"] and tail.dropped == 2
    small = LogTail(max_lines=100, max_bytes=300)
    for i in range(10):
        small.add({"time": "t", "level": "info", "logger": "bot", "message": f"{i}" * 50})
    assert small.lines()[-1]["message"] == "9" * 50 and 0 < len(small.lines()) < 10
    assert small.dropped == 10 - len(small.lines())


async def test_the_recorder_hands_the_lines_over_in_requests_within_the_channels_frame() -> None:
    tail = LogTail()
    for i in range(3000):  # half of them not ASCII: 6 bytes a character on the channel
        tail.add({"time": "2026-11-27T02:00:00.000+00:00", "level": "info", "logger": "bot.app",
                  "message": f"{i:05d} " + ("w" if i % 2 else "ü") * 400})
    asked: list[tuple[str, dict[str, Any]]] = []

    async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        asked.append((method, dict(params)))
        return {}

    recorder = Recorder(RecordingPlan(), ask, "http://127.0.0.1:1/", logs=tail)
    await recorder.finish()
    methods = [method for method, _ in asked]
    assert methods[-1] == METHOD_RECORDING_FINISHED and set(methods[:-1]) == {METHOD_RECORDING_LOGS}
    sent = [line for method, params in asked[:-1] for line in params["lines"]]
    assert sent == tail.lines() and len(methods) > 2  # more than one request, in order
    for _, params in asked[:-1]:
        assert len(json.dumps(params["lines"])) <= LOG_CHUNK_BYTES  # json's default: ASCII, as the channel
        assert len(encode(Request(1, METHOD_RECORDING_LOGS, params))) < MAX_FRAME_BYTES


def test_the_values_of_the_bots_secret_variables_are_masked_in_its_kept_lines() -> None:
    """A provider's key in a URL an HTTP client's error names never reaches logs.jsonl, whoever reads it."""
    tail = LogTail()
    tail.mask_secrets_of({"GOOGLE_API_KEY": "AIzaSyLEAKED-key-1", "VOICEFLEET_BOT_TOKEN": "vfb_LEAKED_token",
                          "CARTESIA_API_KEY": "x", "SAMPLE_RATE": "16000000"})
    handler = logger.add(tail.sink, level="INFO", format="{message}")
    try:
        logger.error("400 Bad Request, url='https://generativelanguage.googleapis.com/v1beta/files?"
                     "key=AIzaSyLEAKED-key-1'")
        try:
            raise RuntimeError("channel refused vfb_LEAKED_token")
        except RuntimeError:
            logger.exception("the channel failed")
        logger.info("rate 16000000, short key x kept")
    finally:
        logger.remove(handler)
    kept = json.dumps(tail.lines())
    assert "LEAKED" not in kept and "files?key=[redacted]" in kept
    assert "rate 16000000, short key x kept" in kept

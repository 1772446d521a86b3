"""A reserve bot that does what its test tells it, one step at a time, for the recording hand-over
tests: the test writes COMMANDED_DIR/cmd-N.json and reads res-N.json. Steps: `put` (ask a part's URL
and upload that many bytes), `ask` (any channel method), `report` (an event), `close` (its
channel), `exit`. It speaks through the stand-in bot's channel (tests/dispatcher/standin_bot.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run by path, as LOCAL_BOT_COMMAND does

from tests.dispatcher.standin_bot import Channel  # noqa: E402


def step(channel: Channel, url: str, command: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from bot.recording.uploader import http_base

    op = command["op"]
    try:
        if op == "put":
            part_url = channel.ask("recording.part", {"part": command["part"]}, timeout=60)["url"]
            part_url = part_url if "://" in part_url else http_base(url).rstrip("/") + part_url
            return {"status": httpx.put(part_url, content=b"\1\0" * (command["size"] // 2), timeout=60).status_code}
        if op == "ask":
            return {"ok": channel.ask(command["method"], command.get("params", {}), timeout=60)}
        if op == "close":  # its channel drops; the process (its machine) goes on
            channel.ws.close()
            return {"closed": True}
        if op == "report":
            channel.report(command["event"], **command.get("fields", {}))
            return {"sent": True}
    except SystemExit as refused:  # the stand-in's channel says a refusal this way
        return {"err": str(refused)}
    return {"err": f"unknown step {op}"}


def main() -> None:
    folder = Path(os.environ["COMMANDED_DIR"])
    signal.signal(signal.SIGTERM, lambda *_: None)  # the test ends it
    url = os.environ["BOT_CHANNEL_URL"]
    assigned = threading.Event()
    channel = Channel(url, os.environ["BOT_CHANNEL_TOKEN"], None, assigned)
    print(json.dumps({"event": "idle", "pid": os.getpid()}), flush=True)
    assigned.wait()
    channel.report("ready")
    for n in range(1 << 20):
        command_file = folder / f"cmd-{n}.json"
        while not command_file.exists():
            time.sleep(0.05)
        command = json.loads(command_file.read_text())
        if command["op"] == "exit":
            os._exit(0)
        (folder / f"res-{n}.tmp").write_text(json.dumps(step(channel, url, command)))
        os.replace(folder / f"res-{n}.tmp", folder / f"res-{n}.json")


if __name__ == "__main__":
    main()

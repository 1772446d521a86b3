"""A hostile user's bot: from the moment it is imported it tries to read what other processes hold,
then talks as a normal bot does (tests/bots/greeter.py), so a session still works.

It records, in `$HOSTILE_REPORT_DIR/<pid>.json`, its own environment, what reading its parent's
`/proc/<ppid>/environ` (the dispatcher) gave, every attempt on its siblings' (the other bots the
dispatcher launched, found by their parent pid in `/proc/<pid>/stat`, which anyone may read), with
their command lines (`/proc/<pid>/cmdline`, which anyone may read too, Landlock or not), and what the
coordination store on loopback (`$HOSTILE_STORE_PORT`: an attacker would scan for it) answered a
`PING` and an `AUTH` as its default user without a password. It keeps trying while it lives, so a
sibling started later is tried in its first milliseconds too.
"""

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

ATTACK_SECONDS = 60.0


def environ_of(pid: int) -> dict[str, object]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            entries = [e.partition(b"=") for e in environ.read().split(b"\0") if e]
    except OSError as exc:
        return {"refused": type(exc).__name__}
    return {"environ": {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in entries}}


def cmdline_of(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return [a.decode(errors="replace") for a in cmdline.read().split(b"\0") if a]
    except OSError:
        return None


def signal_of(pid: int) -> str:
    """Whether this bot may signal `pid` (signal 0: checked, nothing sent)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return type(exc).__name__
    return "allowed"


def parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def try_the_store(port: str) -> dict[str, str]:
    """What a loopback store answers a bot that holds no password (RESP, by hand: no client library)."""
    answers = {}
    for name, command in (("ping", b"PING\r\n"), ("auth", b"AUTH default nopass\r\n"), ("keys", b"KEYS *\r\n")):
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as store:
                store.sendall(command)
                answers[name] = store.recv(256).decode(errors="replace").strip()
        except OSError as exc:
            answers[name] = f"refused: {type(exc).__name__}"
    return answers


def attack(report: Path) -> None:
    me, parent = os.getpid(), os.getppid()
    siblings: dict[str, dict[str, object]] = {}
    found: dict[str, object] = {"pid": me, "ppid": parent, "own": dict(os.environ), "siblings": siblings}
    if port := os.environ.get("HOSTILE_STORE_PORT"):
        found["store"] = try_the_store(port)
    others: set[str] = set()  # processes seen that are not siblings (a parent never changes back)
    deadline = time.monotonic() + ATTACK_SECONDS
    while time.monotonic() < deadline:
        found["parent"] = environ_of(parent)
        found["signal_parent"] = signal_of(parent)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me or entry in others:
                continue
            if entry not in siblings and parent_of(entry) != parent:
                others.add(entry)
                continue
            tried = siblings.setdefault(entry, {"attempts": 0, "refused": []})
            outcome = environ_of(int(entry))
            tried["attempts"] = int(str(tried["attempts"])) + 1
            if (cmdline := cmdline_of(entry)) is not None:
                tried["cmdline"] = cmdline
            tried["signal"] = signal_of(int(entry))
            if "environ" in outcome:
                tried["read"] = outcome["environ"]
            elif outcome["refused"] not in tried["refused"]:  # type: ignore[operator]
                tried["refused"].append(outcome["refused"])  # type: ignore[union-attr]
        temporary = report.with_suffix(".tmp")
        temporary.write_text(json.dumps(found))
        temporary.replace(report)
        time.sleep(0.01)


folder = os.environ.get("HOSTILE_REPORT_DIR")
if folder:
    threading.Thread(target=attack, args=(Path(folder) / f"{os.getpid()}.json",), daemon=True).start()

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bots"))  # the test bots' own kit
from greeter import bot  # noqa: E402

__all__ = ["bot"]

"""SIPp (Debian's `sip-tester`) as the trunk's caller: one call of a scenario under tests/sip/,
bounded by its own `-timeout`, with its messages traced so a test can tell what was answered when."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).parent
SIPP_SECONDS = 60  # a whole call, the bot's start included, on a loaded machine
# A received message in SIPp's trace: its date line, "UDP message received [n] bytes :", a blank line, its first line.
RECEIVED = re.compile(r"-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n[^\n]* received [^\n]*\n\n([^\r\n]*)")


@dataclass(frozen=True)
class SippRun:
    returncode: int
    output: str
    messages: str  # SIPp's -trace_msg file: each message after a line with its date and time

    def answered_at(self, status: int) -> float | None:
        """When the first response with `status` arrived (epoch seconds), or None if none did."""
        return self.received_at(f"SIP/2.0 {status} ")

    def received_at(self, first_line: str) -> float | None:
        """When the first message whose first line starts with `first_line` (a request: "BYE ")
        arrived (epoch seconds), or None if none did."""
        return next(iter(self.all_received_at(first_line)), None)

    def all_received_at(self, first_line: str) -> list[float]:
        """When each message whose first line starts with `first_line` arrived (epoch seconds), in order."""
        return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()  # SIPp's local time
                for stamp, line in RECEIVED.findall(self.messages) if line.startswith(first_line)]

    def statuses(self) -> list[int]:
        return [int(code) for code in re.findall(r"^SIP/2\.0 (\d{3}) ", self.messages, re.MULTILINE)]

    def final_answers(self, cseq: str) -> set[int]:
        """The final statuses the request with `cseq` ("4 INVITE") received, each once."""
        return {int(found.group(1)) for message in self.messages.split("\n-----")
                if (found := re.search(r"^SIP/2\.0 ([2-6]\d\d) ", message, re.MULTILINE))
                and _header(message, "CSeq") == cseq}

    def answered(self, status: int) -> set[tuple[str, str]]:
        """The requests (Call-ID, CSeq) that got a `status` response, each once: a response the far end sent
        again (its 200 to an INVITE whose ACK came late, or to a BYE SIPp sent again after 500 ms) counts once."""
        return {(call_id, cseq) for call_id, cseq in (
            (_header(message, "Call-ID"), _header(message, "CSeq")) for message in self.messages.split(
                "\n-----") if re.search(rf"^SIP/2\.0 {status} ", message, re.MULTILINE))}


def _header(message: str, name: str) -> str:
    found = re.search(rf"^{name}: *([^\r\n]*)", message, re.MULTILINE | re.IGNORECASE)
    return found.group(1).strip() if found else ""


def run_sipp(scenario: str, number: str, edge_port: int, workdir: Path, *, source: str = "127.0.0.1",
             media_port: int | None = None, variables: dict[str, str] | None = None, calls: int = 1,
             edge_address: str = "127.0.0.1", command_prefix: Sequence[str] = (), sip_port: int = 0,
             call_id: str | None = None, credential: tuple[str, str] | None = None) -> SippRun:
    """`calls` of `scenario` to the edge, SIPp the caller; > 1: that many at once (SIPp's -l), started as
    fast as SIPp may. `command_prefix` runs SIPp through a command that execs it (`ip netns exec NS`).
    `sip_port` (0: the kernel's choice) and `call_id` (SIPp's -cid_str) make the call one a test can cue
    (tests/sip/caller_cue.py). `credential`: the username and password a scenario's `[authentication]`
    answers a challenge with (SIPp's -au, -ap: a test's own throwaway credential, never a real one)."""
    where = ["-s", number, "-i", source, "-p", str(sip_port), f"{edge_address}:{edge_port}"]
    if credential is not None:
        where += ["-au", credential[0], "-ap", credential[1]]
    return _run(scenario, [*where, *(["-cid_str", call_id] if call_id else [])], workdir, media_port, variables,
                calls, command_prefix)


def run_callee(scenario: str, port: int, workdir: Path, *, media_port: int | None = None,
               variables: dict[str, str] | None = None, calls: int = 1) -> SippRun:
    """`calls` of `scenario` from the edge (one by default), SIPp the far end listening on 127.0.0.1:`port`."""
    return _run(scenario, ["-i", "127.0.0.1", "-p", str(port)], workdir, media_port, variables, calls)


def _run(scenario: str, where: list[str], workdir: Path, media_port: int | None,
         variables: dict[str, str] | None, calls: int = 1, command_prefix: Sequence[str] = ()) -> SippRun:
    trace = workdir / f"{scenario}.messages"
    trace.unlink(missing_ok=True)
    command = [*command_prefix, "sipp", "-sf", str(HERE / f"{scenario}.xml"), *where, "-m", str(calls),
               "-l", str(calls), "-r", str(calls), "-nostdin", "-timeout", str(SIPP_SECONDS), "-timeout_error",
               "-trace_msg", "-message_file", str(trace)]
    if media_port is not None:
        command += ["-mp", str(media_port)]
    for name, value in (variables or {}).items():
        command += ["-set", name, value]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=SIPP_SECONDS + 30,
                          check=False)
    return SippRun(done.returncode, done.stdout[-3000:] + done.stderr[-3000:],
                   trace.read_text(errors="replace") if trace.exists() else "")

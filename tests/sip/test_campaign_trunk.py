"""A campaign through a SIP trunk, end to end: a real dispatcher works it (`POST /campaigns` with `"trunk"`),
hands each row's call to the real edge (`python -m sipedge`), and SIPp is the trunk's far end
(tests/sip/callee_campaign.xml): two numbers answer, one is busy (486), one rings until the edge's CANCEL.
Busy and no answer are called again after the campaign's delay; the campaign is stopped after its first call
and resumed. Checked on the edge's record of the moment its pace handed each INVITE to its SIP stack (what the
edge promises: a turn, 1/`cps`, apart on its own clock; docs/sip.md, "Pacing"), matched to SIPp's own record of
each INVITE it received: every call's INVITE once, each retry after its delay; and on the campaign's results
file, each row's outcome."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.sipp import SippRun, run_callee
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, SIPp, bot processes importing Pipecat

EDGE_SECRET = "edge-control-secret-for-the-campaign-0123456789"
FROM = "+14155550199"
ANSWERS = ["+14155550170", "+14155550171"]
BUSY, RINGS = "+14155550172", "+14155550173"  # tests/sip/callee_campaign.xml's
# The trunk's calls a second: INVITEs at least 1 s apart, a turn long enough that calls unpaced come closer on a
# busy host, so a broken pace fails here (docs/testing.md, "A busy machine").
CPS = 1.0
RETRY_AFTER = 2.0
CALLS = len(ANSWERS) + 2 * 2  # the busy and the unanswered number are each called twice
FINISHED_SECONDS = 50.0


@pytest.fixture(scope="module")
def dialling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, EdgeProcess, int]]:
    control_port, callee_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"), "RESERVE_MIN_IDLE": "4",
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET}
    trunks = (f'\n[[trunk]]\nname = "far"\ntermination_uri = "sip:127.0.0.1:{callee_port}"\ncallers = ["local"]\n'
              f'caller_ids = ["{FROM}"]\ncps = {CPS}\nring_seconds = 2\n')
    keys = edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}")
    with (run_dispatcher(tmp_path_factory.mktemp("campaign-dispatcher"), env) as dispatcher,
          run_edge(dispatcher, tmp_path_factory.mktemp("campaign-edge"), settings=f"control_port = {control_port}\n"
                   f"{KEY_SETTINGS}", trunks=trunks, env=keys) as edge):
        yield dispatcher, edge, callee_port


def handed_over(edge: EdgeProcess, trunk: str) -> list[tuple[float, str]]:
    """Each INVITE through `trunk` as the edge's pace handed it to the SIP stack (sipedge/invite_pace.py):
    (when on the edge's monotonic clock, the number called), in order."""
    found = re.findall(rf"trunk {trunk}'s INVITE handed over at (\S+) \(the edge's monotonic clock\): "
                       r"call to (\+\d+)", edge.log())
    return [(float(at), number) for at, number in found]


def invites(run: SippRun) -> list[tuple[float, str]]:
    """Each call's first INVITE as SIPp received it: (when, the number called), in order."""
    seen: dict[str, tuple[float, str]] = {}
    for message in run.messages.split("\n-----"):
        found = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n[^\n]* received [^\n]*\n\nINVITE sip:(\+\d+)@",
                          message)
        call_id = re.search(r"^Call-ID: *(\S+)", message, re.MULTILINE | re.IGNORECASE)
        if found and call_id and call_id.group(1) not in seen:
            seen[call_id.group(1)] = (datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(),
                                      found.group(2))
    return sorted(seen.values())


async def progress(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    answer = await api.get(f"/campaigns/{campaign_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def until(api: httpx.AsyncClient, campaign_id: str, what: str, check: Any, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check(shown := await progress(api, campaign_id)):
            return shown
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}: {shown}")


async def test_a_campaign_through_a_trunk_keeps_its_cps_retries_after_the_delay_and_stops_and_resumes(
        dialling: tuple[DispatcherProcess, EdgeProcess, int]) -> None:
    dispatcher, edge, callee_port = dialling
    far_end = asyncio.create_task(asyncio.to_thread(run_callee, "callee_campaign", callee_port, edge.workdir,
                                                    calls=CALLS))
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api, 4)
        created = await api.post("/campaigns", json={
            "rows": [{"to": n, "body": {"row": i}} for i, n in enumerate([*ANSWERS, BUSY, RINGS])], "from": FROM,
            "trunk": "far", "concurrency": 4,  # above the edge's room for outbound calls (2 of its 3)
            "retry": {"on": ["busy", "no_answer"], "after_seconds": RETRY_AFTER, "attempts": 2}})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        await until(api, campaign_id, "its first call placed", lambda p: p["placed"] >= 1, 20)
        assert (await api.post(f"/campaigns/{campaign_id}/stop")).json()["status"] == "stopped"
        settled = await until(api, campaign_id, "its calls under way ended", lambda p: p["in_progress"] == 0, 30)
        await asyncio.sleep(1.5)  # three of the worker's looks: a stopped campaign claims no row
        still = await progress(api, campaign_id)
        assert still["status"] == "stopped" and still["placed"] == settled["placed"] < CALLS, still
        assert (await api.post(f"/campaigns/{campaign_id}/resume")).json()["status"] == "running"
        done = await until(api, campaign_id, "its end", lambda p: p["status"] == "finished", FINISHED_SECONDS)
        table = await api.get(f"/campaigns/{campaign_id}/results", params={"format": "csv"})
    run = await far_end
    outcomes = {r["to"]: (r["outcome"], r["attempts"]) for r in csv.DictReader(io.StringIO(table.text))}
    assert outcomes == {ANSWERS[0]: ("answered", "1"), ANSWERS[1]: ("answered", "1"), BUSY: ("busy", "2"),
                        RINGS: ("no_answer", "2")}, (outcomes, done, dispatcher.log()[-3000:])
    calls = invites(run)
    assert sorted(n for _, n in calls) == sorted([*ANSWERS, BUSY, BUSY, RINGS, RINGS]), (calls, run.output)
    handed = handed_over(edge, "far")
    assert sorted(n for _, n in handed) == sorted(n for _, n in calls), (handed, calls)  # the INVITEs SIPp got
    # The pace's own promise, on the clock it keeps, with nothing unbounded (the SIP thread's hop, the loopback)
    # after it: each a turn after the one before, as the pace computed that turn.
    close = [(earlier, later) for (earlier, _), (later, _) in zip(handed, handed[1:], strict=False)
             if later < earlier + 1 / CPS]
    assert not close, (close, handed)
    for number in (BUSY, RINGS):
        first, again = [at for at, n in calls if n == number]
        assert again - first >= RETRY_AFTER, (number, calls)  # called again only after the delay
    assert run.returncode == 0, run.output

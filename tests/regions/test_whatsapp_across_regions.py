"""A WhatsApp call across regions: Meta's `connect` taken in eu, its `terminate` landing in us (a front door
sends Meta's one webhook URL to either). us does not hold the call, so it sends the event on, signed, to
every peer: eu stops the call's session, takes the event once (Meta's own retry at eu then finds it
taken) and hangs nothing up at Meta; an event for a call no region holds is not sent back and forth.

Two real regional dispatchers (`python -m dispatcher`) on loopback with stand-in bots; Meta played by its
strict fake (tests/fakes/whatsapp.py), whose Graph requests are counted. The stand-in answers an offer
with `answer-to:` and the offer, which the fake judges after that prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dispatcher.conftest import API_KEY
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_faults import standin_answers
from tests.phone.test_whatsapp_webhook import OFFER
from tests.regions.support import reachable, regions
from tests.regions.test_spill_over import AUTH
from tests.support.processes import DispatcherProcess
from tests.support.waiting import wait_until

__all__ = ["standin_answers"]
DEADLINE = 60.0


@pytest.fixture
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp()) as fake:
        yield fake


def deliver(region: DispatcherProcess, webhook: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    body, headers = webhook
    answer = httpx.post(f"{region.base_url}/phone/whatsapp", content=body, headers=headers, timeout=DEADLINE)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def session_of(region: DispatcherProcess, call_id: str) -> str | None:
    sessions = httpx.get(f"{region.base_url}/sessions", headers=AUTH, timeout=DEADLINE).json()["sessions"]
    return next((s["session_id"] for s in sessions if (s.get("whatsapp") or {}).get("call_id") == call_id), None)


def ended(region: DispatcherProcess, session_id: str) -> bool:
    answer = httpx.get(f"{region.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    return answer.status_code == 404 or answer.json()["status"] in ("ended", "failed")


def sent(meta: FakeWhatsApp, action: str) -> int:
    return sum(1 for c in meta.calls_to("POST", "/calls") if (c.json() or {}).get("action") == action)


def test_meta_s_terminate_landing_in_another_region_stops_the_call_s_session_once(
        tmp_path: Path, meta: FakeWhatsApp) -> None:
    whatsapp = {**meta.env(f"{PHONE_NUMBER_ID}=support"), "DISPATCHER_API_KEYS": f"support:{API_KEY}"}
    with regions(tmp_path, ("eu", "us"), {"eu": whatsapp, "us": whatsapp}) as (_, running):
        eu, us = running["eu"], running["us"]

        def logs() -> str:
            return f"--- eu\n{eu.log()[-3000:]}\n--- us\n{us.log()[-3000:]}"

        wait_until(lambda: reachable(eu, "us") and reachable(us, "eu"), "the regions see each other",
                   timeout=DEADLINE, detail=logs)
        call = meta.ring(OFFER)
        assert deliver(eu, meta.connect_webhook(call))["taken"] == 1
        wait_until(lambda: call.state == "accepted", "the call accepted at eu", timeout=DEADLINE, detail=logs)
        session_id = str(wait_until(lambda: session_of(eu, call.call_id), "its session listed", timeout=DEADLINE,
                                    detail=logs))
        terminate = meta.terminate_webhook(call)  # the caller hung up; Meta's webhook reached us
        assert deliver(us, terminate)["taken"] == 1
        wait_until(lambda: ended(eu, session_id), "the call's session ended at eu", timeout=DEADLINE, detail=logs)
        assert deliver(eu, terminate)["taken"] == 0  # Meta's retry at eu: taken there once already
        assert (sent(meta, "terminate"), sent(meta, "reject")) == (0, 0), meta.calls_to("POST", "/calls")

        stray = meta.ring(OFFER)  # a call no region took: its terminate goes to eu, which holds nothing
        assert deliver(us, meta.terminate_webhook(stray))["taken"] == 1
        wait_until(lambda: f"call {stray.call_id}: a terminate relayed by region us is for a call not held here"
                   in eu.log(), "eu said it holds no such call", timeout=DEADLINE, detail=logs)
        assert "relayed by region eu" not in us.log()  # never sent back

"""What a caller of the dispatcher sees when Modal refuses, throttles or loses a Sandbox: the API's
answers (502 / 503 with the reason and a `Retry-After`, a session read back `failed` with why), with
the real `modal` client against the fake Modal and the fake Daily."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from grpclib.const import Status

from dispatcher.app import create_app
from dispatcher.machines.modal.provider import ModalMachines
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.fakes.daily import FakeDaily
from tests.fakes.modal_server import FakeModal

KEY = "modal-faults-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def api(fake_modal: FakeModal, fake_daily: FakeDaily) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(machines="modal", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600)
    machines = ModalMachines(ModalSettings.from_env({**fake_modal.env, "MODAL_RETRY_DEADLINE_SECONDS": "1",
                                                     "MODAL_POLL_SECONDS": "0.05"}),
                             coordination=LocalCoordination())
    app = create_app(settings, env={}, machines=machines, rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    yield http
    await http.aclose()
    await app.state.voicefleet.aclose()


async def test_a_create_modal_refuses_is_a_502_naming_modals_refusal(api: httpx.AsyncClient,
                                                                   fake_modal: FakeModal) -> None:
    fake_modal.fail("SandboxCreate", Status.INVALID_ARGUMENT, "Image not runnable")
    response = await api.post("/start", json={}, headers=AUTH)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "modal_rejected"
    assert "retry-after" not in response.headers  # nothing to wait for: the request itself is wrong


# The client retries UNAVAILABLE itself (a few times); RESOURCE_EXHAUSTED the provider retries with backoff.
@pytest.mark.parametrize(("status", "reason"), [(Status.RESOURCE_EXHAUSTED, "modal_throttled"),
                                                (Status.UNAVAILABLE, "modal_unavailable")])
async def test_modal_throttling_or_unavailable_past_the_deadline_is_a_503_with_its_reason_and_retry_after(
    api: httpx.AsyncClient, fake_modal: FakeModal, status: Status, reason: str
) -> None:
    fake_modal.fail("SandboxCreate", status, "Concurrent Sandbox limit reached", times=1000)
    response = await api.post("/start", json={}, headers=AUTH)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == reason
    assert int(response.headers["Retry-After"]) >= 1
    assert fake_modal.creates == []


async def test_a_sandbox_modal_loses_mid_session_reads_failed_with_why(api: httpx.AsyncClient,
                                                                      fake_modal: FakeModal) -> None:
    started = await api.post("/start?wait=started", json={}, headers=AUTH)  # a create answers before it runs
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    assert (await api.get(f"/sessions/{session_id}", headers=AUTH)).json()["status"] == "started"
    fake_modal.terminate(fake_modal.by_name(f"vf-{session_id}"))  # a lost host, out of memory
    session = (await api.get(f"/sessions/{session_id}", headers=AUTH)).json()
    assert session["status"] == "failed", session
    assert "terminated by Modal" in str(session)

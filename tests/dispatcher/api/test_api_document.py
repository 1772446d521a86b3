"""The OpenAPI document says what the session routes answer (clients generate code from it), and
an unknown session's error names it without echoing an unbounded path back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines
from dispatcher.settings import Settings

# Every error status a session route may answer, each with the one error body (schemas.ErrorOut).
ERROR_STATUSES = {"400", "401", "404", "409", "413", "422", "429", "502", "503", "504"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(), env={}, machines=LocalMachines(), rooms=None).openapi()


@pytest.mark.parametrize(("method", "path", "success"), [
    ("post", "/start", "201"),
    ("get", "/sessions/{session_id}", "200"),
    ("delete", "/sessions/{session_id}", "204"),
])  # fmt: skip
def test_each_session_route_documents_its_success_and_every_error(
    document: dict[str, Any], method: str, path: str, success: str
) -> None:
    responses = document["paths"][path][method]["responses"]
    assert success in responses
    assert ERROR_STATUSES <= set(responses)
    for status in ERROR_STATUSES:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}


def test_start_documents_the_query_and_header_its_route_reads_itself(document: dict[str, Any]) -> None:
    """`wait` and `Idempotency-Key` are read by the route, not by FastAPI: the document still names
    them, where they go and what they accept, as a generated client needs."""
    listed = document["paths"]["/start"]["post"]["parameters"]
    parameters = {p["name"]: p for p in listed}
    assert len(listed) == 2 and set(parameters) == {"wait", "Idempotency-Key"}  # each once
    assert parameters["wait"]["in"] == "query" and parameters["wait"]["schema"]["pattern"] == "^started$"
    assert parameters["Idempotency-Key"]["in"] == "header"
    assert not any(p["required"] for p in parameters.values())


@pytest.mark.parametrize(("length", "shown"), [(64, 64), (65, 64), (2000, 64)])
async def test_an_unknown_sessions_404_shows_at_most_64_characters_of_its_id(
    api: httpx.AsyncClient, length: int, shown: int
) -> None:
    session_id = "z" * length  # not a session id: refused before any provider call
    response = await api.get(f"/sessions/{session_id}")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message == f"no session {'z' * shown}" + ("…" if length > shown else "")


async def test_answers_leave_out_what_a_session_does_not_have(api: httpx.AsyncClient) -> None:
    started = await api.post("/start", json={})
    got = await api.get(f"/sessions/{started.json()['session_id']}")
    # A local session has no room, no token and (still starting or running) no failure detail:
    # the fields are absent, not null.
    for answer in (started.json(), got.json()):
        assert None not in answer.values() and "detail" not in answer and "room_url" not in answer

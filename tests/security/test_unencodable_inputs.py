"""Finding: two inputs any client key could send were answered 500 with a traceback in the log. A
lone surrogate in `POST /start`'s JSON (`"\\ud800"`, valid JSON that UTF-8 cannot encode) failed the
body's fingerprint before the session was admitted; `GET /usage?until=0001-01-01` went 29 days back
from the first day a date holds (OverflowError). Each is now refused with its error and the way out.
Through the real app (stand-in bots), with a client key."""

from __future__ import annotations

import logging

import pytest

from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, bearer, keys
from tests.dispatcher.conftest import make_api  # noqa: F401 (fixture: a real app with stand-in bots)

# Written by hand: json.dumps of a str holding "\ud800" writes the same escape, as a client's JSON would.
SURROGATE_STARTS = ('{"body": {"x": "\\ud800"}}', '{"requestData": {"\\ud800": "\\ud800"}}',
                    '{"transport": "websocket", "body": {"to": "\\udfff"}}')


@pytest.mark.parametrize("raw", SURROGATE_STARTS)
async def test_a_start_holding_a_lone_surrogate_is_invalid_json_not_a_500(
    make_api, caplog: pytest.LogCaptureFixture, raw: str  # noqa: F811
) -> None:
    async with keys(make_api) as api:
        with caplog.at_level(logging.WARNING):
            answer = await api.post("/start", content=raw,
                                    headers={**bearer(TEAM_A), "Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_json" and "lone surrogate" in error["message"], error
        assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
        # Nothing was started: the key's next start has the whole deployment's room, as before.
        assert (await api.get("/sessions", headers=bearer(TEAM_A))).json()["sessions"] == []


@pytest.mark.parametrize("key", [TEAM_A, ADMIN])
@pytest.mark.parametrize("query", ["?until=0001-01-01", "?until=0001-01-10&since=400d"])
async def test_usage_back_past_the_first_day_a_date_holds_is_refused_not_a_500(
    make_api, caplog: pytest.LogCaptureFixture, key: str, query: str  # noqa: F811
) -> None:
    async with keys(make_api) as api:
        with caplog.at_level(logging.WARNING):
            answer = await api.get(f"/usage{query}", headers=bearer(key))
        assert answer.status_code == 422, answer.text
        assert "before the year 1" in answer.json()["error"]["message"] and "later `until`" in answer.text
        assert "unhandled error" not in caplog.text
        assert (await api.get("/usage?until=0001-01-30", headers=bearer(key))).status_code == 200  # 30 days: held

"""`GET /sessions?region=default` (`voicefleet sessions --region default`) in a deployment of one
region, which `status` names `default`: every session, not none; a name that is no region of the
deployment is refused with the names it has, not answered with an empty list."""

from __future__ import annotations

from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, bearer, keys, listed, start


async def test_region_default_lists_the_one_regions_sessions(make_api) -> None:  # type: ignore[no-untyped-def]
    async with keys(make_api) as api:
        session_id = await start(api, TEAM_A)
        status = await api.get("/status", headers=bearer(ADMIN))
        assert status.status_code == 200, status.text
        assert status.json()["region"] == "default"  # the name `status` gives this region
        sessions = await listed(api, TEAM_A, 1, "?region=default")
        assert [s["session_id"] for s in sessions] == [session_id]


async def test_a_region_that_is_none_of_the_deployments_is_refused_naming_them(make_api) -> None:  # type: ignore[no-untyped-def]
    async with keys(make_api) as api:
        answer = await api.get("/sessions?region=eu-west", headers=bearer(TEAM_A))
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "unknown_region"
        assert "its regions: default" in answer.json()["error"]["message"]

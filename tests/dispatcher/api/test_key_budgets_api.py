"""A key's budgets set at runtime (`PATCH /capacity` with `budget.KEY.KIND`), in one real dispatcher
app on local bots: a start over a budget is refused 429 naming the budget, what was used and when it
resets; the key's sessions at once are counted from the deployment's ledger; a budget lifted admits
again; bad budgets and a client key are refused with the way forward; a budget for a key not made yet
is kept with a warning."""

from __future__ import annotations

import asyncio

import httpx

from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import ClientFactory, _ClientContext

ACME_KEY = "acme-budget-key-5d0e7c2b19"
OTHER_KEY = "other-budget-key-81fa3c6d20"
ADMIN_KEY = "vf-budget-admin-2a9e41c7b3"
ACME, OTHER = {"Authorization": f"Bearer {ACME_KEY}"}, {"Authorization": f"Bearer {OTHER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def keyed(make_api: ClientFactory, **settings: object) -> _ClientContext:
    named = {hash_api_key(ACME_KEY): "acme", hash_api_key(OTHER_KEY): "other"}
    return make_api(api_key_hashes=frozenset(named), api_key_names=tuple(named.items()),
                    admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}), max_concurrent_sessions=10, **settings)


async def start(api: httpx.AsyncClient, headers: dict[str, str] = ACME) -> httpx.Response:
    return await api.post("/start", json={}, headers=headers)


async def used(api: httpx.AsyncClient, name: str = "budget.acme.sessions") -> float:
    answer = await api.get("/capacity", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return float(answer.json()["values"][name]["in_use"])


async def until_refused(api: httpx.AsyncClient) -> httpx.Response:
    """The next start of acme, refused."""
    answer = await start(api)  # the two sessions this replica admitted count at once, read or not
    assert answer.status_code == 429, answer.text
    return answer


async def test_a_start_over_a_budget_is_refused_naming_it_what_was_used_and_when_it_resets(
        make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        changed = await api.patch("/capacity", json={"budget.acme.minutes-day": 0}, headers=ADMIN)
        assert changed.status_code == 200, changed.text
        assert "warnings" not in changed.json()
        refused = await start(api)
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "over_budget"
        assert "minutes-day budget: 0 of 0 minutes used" in error["message"]
        assert "resets at" in error["message"] and error["resets_at"].endswith("T00:00:00Z")
        assert refused.headers["retry-after"]
        assert (await start(api, OTHER)).status_code == 201  # another key's starts are its own
        lifted = await api.patch("/capacity", json={"budget.acme.minutes-day": None}, headers=ADMIN)
        assert lifted.status_code == 200, lifted.text
        assert (await start(api)).status_code == 201
        lines = (await api.get("/audit/runtime", headers=ADMIN)).json()["lines"]
        assert [(line["name"], line["old"], line["new"]) for line in lines] == [
            ("budget.acme.minutes-day", 0, None), ("budget.acme.minutes-day", None, 0)]


async def test_a_budget_of_sessions_at_once_counts_the_keys_sessions_and_frees_one_at_a_stop(
        make_api: ClientFactory) -> None:
    context = keyed(make_api)
    async with context as api:
        # In-process, the app's lifespan is off: its reading of the ledger, once a second, is run here.
        follow = context.app.state.voicefleet.sessions.budgets.follow
        reading = asyncio.create_task(follow())
        assert (await api.patch("/capacity", json={"budget.acme.sessions": 2}, headers=ADMIN)).status_code == 200
        first = await start(api)
        second = await start(api)
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        refused = await until_refused(api)
        assert "sessions budget: 2 of 2 sessions at once used" in refused.json()["error"]["message"]
        stopped = await api.delete(f"/sessions/{first.json()['session_id']}", headers=ACME)
        assert stopped.status_code in (200, 204), stopped.text
        for _ in range(100):  # the stop closes it in the ledger; the next reading frees the place
            if (await used(api)) == 1:
                break
            await asyncio.sleep(0.1)
        again = await start(api)
        assert again.status_code == 201, again.text
        reading.cancel()


async def test_bad_budgets_and_a_client_key_are_refused_with_the_way_forward(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        lots = await api.patch("/capacity", json={"budget.acme.minutes-month": "lots"}, headers=ADMIN)
        assert lots.status_code == 400, lots.text
        assert lots.json()["error"]["code"] == "invalid_budget"
        assert "'lots'" in lots.json()["error"]["message"] and "a whole number" in lots.json()["error"]["message"]
        half = await api.patch("/capacity", json={"budget.acme.sessions": 1.5}, headers=ADMIN)
        assert half.status_code == 400, half.text
        client = await api.patch("/capacity", json={"budget.acme.sessions": 1}, headers=ACME)
        assert client.status_code == 403
        assert "DISPATCHER_ADMIN_KEYS" in client.json()["error"]["message"]
        unknown = await api.patch("/capacity", json={"budget.nobody.spend-month": 99.5}, headers=ADMIN)
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["warnings"] == ["no API key is named 'nobody' yet: its budgets apply once one is "
                                              "(`voicefleet keys list` shows the names)"]
        assert unknown.json()["values"]["budget.nobody.spend-month"]["value"] == 99.5


async def test_starts_sent_at_once_at_one_replica_never_pass_a_budget_of_sessions_at_once(
        make_api: ClientFactory) -> None:
    # Each start is checked before its machine is made and counted only once it is: without a place
    # held at the check, every start in flight at once passed a budget of 1.
    async with keyed(make_api) as api:
        assert (await api.patch("/capacity", json={"budget.acme.sessions": 1}, headers=ADMIN)).status_code == 200
        answers = await asyncio.gather(*(start(api) for _ in range(4)))  # within the key's share of 5
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [201, 429, 429, 429], [answer.text for answer in answers]
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert refused.json()["error"]["code"] == "over_budget"
        assert (await start(api)).status_code == 429  # the admitted one still holds the place

"""A Daily dial-in call's cold transfer when something fails on its way (dispatcher/phone/daily_transfers.py and
daily_calltransfer.py), through the dispatcher's routes against the strict Daily fake (tests/fakes/daily.py), its
webhooks delivered to the dispatcher with Daily's exponential retry: Daily that never answers the transfer, and
the replicas' store down while Daily's webhook settles the transfer's record."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.phone import daily_transfers
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.api.test_daily_calltransfer import DESK, heard, of
from tests.dispatcher.api.test_daily_dialin_transfer import Dialin, code
from tests.dispatcher.api.test_daily_dialin_transfer import dialin as dialin  # noqa: PLC0414 - the same fixture


async def test_a_transfer_daily_never_answers_is_504_never_sent_again_and_settled_when_daily_acts(
        dialin: Dialin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daily_transfers, "TRANSFER_SECONDS", 0.3)  # the request's bound on the transfer, shortened
    session_id, _ = await dialin.call()
    hold = dialin.daily.hold(method="POST", path_contains="/sipCallTransfer")  # Daily has it, and does not answer
    try:
        answer = await dialin.transfer(session_id, to=DESK, mode="cold")
        assert (answer.status_code, code(answer)) == (504, "transfer_outcome_unknown"), answer.text
        assert answer.json()["error"]["outcome"] == "unknown"
        assert hold.caught == 1 and of(await dialin.events(session_id), "transferred") == []
        again = await dialin.transfer(session_id, to=DESK, mode="cold")  # it may be done: never asked twice
        assert (again.status_code, code(again)) == (409, "already_transferring"), again.text
    finally:
        hold.release()  # then Daily acts on the POST it held: its webhooks say it took the transfer
    assert await dialin.daily.eventually(lambda: heard(dialin.daily, "calltransfer.initiated") == 1)
    (transferred,) = of(await dialin.events(session_id), "transferred")
    assert (transferred["carrier_status"], transferred["heard_from"]) == ("accepted", "calltransfer")
    assert len(dialin.posts()) == 1


async def test_the_store_down_as_dailys_webhook_settles_the_record_is_a_503_and_dailys_retry_settles_it(
        dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.pause_webhooks()
    dialin.daily.lose_transfer_answer(503)  # Daily took it, and its answer was lost: the outcome unknown
    answer = await dialin.transfer(session_id, to=DESK, mode="cold")
    assert (answer.status_code, code(answer)) == (504, "transfer_outcome_unknown"), answer.text
    claims = dialin.app.state.voicefleet.phone.daily_calltransfers._claims
    real, downs = claims.swap, [1]

    async def swap(what: str, value: str, new: str, seconds: float) -> bool:
        if downs and what == record_key(session_id):  # the store goes as the record is settled
            downs.pop()
            raise StoreUnavailable("down")
        return bool(await real(what, value, new, seconds))

    claims.swap = swap
    await dialin.daily.release_webhooks()
    assert heard(dialin.daily, "calltransfer.triggered", 503) == 1  # not taken: Daily sends it again
    assert heard(dialin.daily, "calltransfer.triggered", 200) == 1
    await asyncio.sleep(0)
    (transferred,) = of(await dialin.events(session_id), "transferred")  # settled once, by the retry
    assert (transferred["carrier_status"], transferred["heard_from"]) == ("accepted", "calltransfer")
    assert (await claims.held(record_key(session_id)) or "").endswith(" outcome=reconciled")

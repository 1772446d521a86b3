"""A call handed to a person from any replica: the one holding the call's carrier socket does it.

Only that replica can transfer the call (it alone hears the stream close that confirms Twilio took the
new TwiML, and keeps the call `transferring` so no second `<Dial>` follows). A client's request or a
bot's `call.transfer` that reaches another replica, already checked there (its key, or the bot's own
channel), goes to it over the store's relay (`Coordination.ask_call`, by the call's media record) as
`phone.transfer`, a method only a replica's sealed relay carries; its answer comes back unchanged.

The relay waits longer than the transfer's own budget, so once the request may have been sent (its
PUBLISH ran, or its reply from the store was lost), no answer means the transfer may have been done
there: answered as unknown, never tried again. Only a failed look-up of the call's replica, before
anything was sent, is "the store is unreachable, try again". The look-up, the send and the wait all
come out of one budget, so the answer is given before a bot's `call.transfer` stops waiting.
One process has no other replica: a call not here is no call. A Daily dial-in call is at no replica
(Daily holds its media): when no replica holds the session's call, it is asked of Daily's REST API
(dispatcher/phone/daily_transfers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botchannel.transfer import TRANSFER_TIMEOUT_SECONDS, WARM_TRANSFER_TIMEOUT_SECONDS
from dispatcher.errors import ApiError
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.sip_transfers import WARM_EXTRA_SECONDS
from dispatcher.phone.transfer_target import WARM, TransferTarget, transfer_target
from dispatcher.phone.transfers import BUDGET_SECONDS, Transfers
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination
from dispatcher.store.relay import NotHere, RelayRefused

METHOD_RELAYED_TRANSFER = "phone.transfer"
# The call's replica answers within BUDGET_SECONDS; the look-up, the relay's two hops and a busy replica get
# the rest (one deadline for them all, however slow the store), and the whole stays under the bot's own wait.
RELAY_SECONDS = BUDGET_SECONDS + 3.0
STORE_RETRY_SECONDS = 2.0
# A replica of the version before relayed transfers answers a method it does not relay so, having done
# nothing; this version's call replica never does (its refusals are the transfer's own), so the asker
# tells the client about the deploy instead of blaming its request.
_NOT_RELAYED = (400, "invalid_request")
DEPLOY_RETRY_SECONDS = 10.0
assert BUDGET_SECONDS < RELAY_SECONDS < TRANSFER_TIMEOUT_SECONDS
assert RELAY_SECONDS + WARM_EXTRA_SECONDS < WARM_TRANSFER_TIMEOUT_SECONDS


class TransfersAnywhere:
    def __init__(self, transfers: Transfers, coordination: Coordination, *,
                 relay_seconds: float = RELAY_SECONDS, daily: DailyTransfers | None = None) -> None:
        self._transfers = transfers
        self._daily = daily  # Daily dial-in calls, when this deployment makes Daily rooms
        self._coordination = coordination
        self._relay_seconds = relay_seconds

    async def transfer(self, session_id: str, target: TransferTarget) -> dict[str, Any] | None:
        """The transfer's answer from the replica holding the call (this one, or another); None when no
        replica holds a call of `session_id`. Raises the call's replica's `ApiError` unchanged."""
        call = self._transfers.live(session_id)
        if call is not None:
            return await self._transfers.transfer(call, target)
        try:
            asked = {"to": target.to, "mode": target.mode, "summary": target.summary}
            wait = self._relay_seconds + (WARM_EXTRA_SECONDS if target.mode == WARM else 0.0)
            answer = await self._coordination.ask_call(session_id, METHOD_RELAYED_TRANSFER, asked, wait)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot find the replica "
                           "holding this call; nothing was transferred, try again", retry_after=STORE_RETRY_SECONDS
                           ) from None
        except RelayRefused as refused:
            if (refused.status, refused.code) != _NOT_RELAYED:
                raise
            raise ApiError(503, "replica_outdated", "the replica holding this call runs an earlier dispatcher version "
                           "that takes no transfer from another replica (a rolling deploy is under way): nothing was "
                           "transferred; try again once the deploy is done", retry_after=DEPLOY_RETRY_SECONDS
                           ) from None
        except TimeoutError:
            raise ApiError(504, "transfer_outcome_unknown", "no answer came back from the replica holding this call "
                           "in time: the request may have reached it, so the call may have been transferred, and it "
                           "is not sent again. If it did reach that replica, a new transfer is refused (409 "
                           "already_transferring) while the first is under way; the session's timeline says "
                           "`transferred` if it was", extra={"outcome": "unknown"}) from None
        if answer is None and self._daily is not None:
            return await self._daily.transfer(session_id, target)
        return None if answer is None else dict(answer)

    async def answer_relayed(self, session_id: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A transfer another replica checked and relayed here; `NotHere` when this replica holds no call of
        `session_id` (the asker says why there is none)."""
        call = self._transfers.live(session_id)
        if call is None:
            raise NotHere(session_id)
        target = transfer_target(params.get("to"), params.get("mode"), params.get("summary"))
        return await self._transfers.transfer(call, target)

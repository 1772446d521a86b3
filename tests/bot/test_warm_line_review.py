"""A hostile review of the `ringing` step (a Twilio call's warm transfer): a bot's `on_warm_transfer` handler
written to the contract as it stood (two steps: `brief` for the person, `failed` for the caller, so an `else`
is the failure line) is now asked for `ringing` too, and its failure line is said to the caller while the
person is being called. A strict xfail until the step is opt-in (or the handler's contract is versioned)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import transfer
from bot.transfer import WarmStep, on_warm_transfer, warm_line

FAILURE = "Sorry, nobody could take your call right now."


@pytest.fixture(autouse=True)
def no_handler() -> Iterator[None]:
    yield
    transfer._warm.clear()  # noqa: SLF001 - the module's one handler, registered by a test


@pytest.mark.xfail(strict=True, reason="warm_line hands `ringing` to every registered handler: one written for "
                   "brief/failed answers it with its failure line")
async def test_a_two_step_handler_does_not_tell_the_ringing_caller_that_nobody_answered() -> None:
    @on_warm_transfer
    def lines(step: WarmStep) -> str:
        return "A caller about order 1042." if step.event == "brief" else FAILURE

    assert await warm_line(WarmStep("ringing", "+14155550123")) != FAILURE

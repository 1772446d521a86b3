"""A hostile review of the `ringing` step (a Twilio call's warm transfer): a bot's `on_warm_transfer` handler
written to the contract as it stood (two steps: `brief` for the person, `failed` for the caller, so an `else`
is the failure line) is not asked for `ringing`, a step it never declared: the caller hears the default line,
not its failure line, while the person is being called."""

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


async def test_a_two_step_handler_does_not_tell_the_ringing_caller_that_nobody_answered() -> None:
    @on_warm_transfer
    def lines(step: WarmStep) -> str:
        return "A caller about order 1042." if step.event == "brief" else FAILURE

    assert await warm_line(WarmStep("ringing", "+14155550123")) != FAILURE

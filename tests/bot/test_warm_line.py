"""The bot host's `line` step (a Twilio call's warm transfer): the briefing's text alone, said by nobody here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import transfer
from bot.transfer import DEFAULT_BRIEFING, DEFAULT_RINGING, WarmStep, on_warm_transfer, warm_line
from bot.warm_steps import warm_handler
from botchannel.transfer import SUMMARY_CHARS


@pytest.fixture(autouse=True)
def no_handler() -> Iterator[None]:
    yield
    transfer._warm.clear()  # noqa: SLF001 - the module's one handler, registered by a test


async def test_the_line_is_the_bot_s_handler_s_text_without_a_running_pipeline() -> None:
    steps: list[WarmStep] = []

    @on_warm_transfer
    async def brief(step: WarmStep) -> str:
        steps.append(step)
        return "A caller about order 1042." + " more" * 100

    answer = await warm_handler(lambda: None)({"event": "line", "to": "+14155550123"})
    assert answer["line"].startswith("A caller about order 1042.") and len(answer["line"]) == SUMMARY_CHARS
    assert steps == [WarmStep("brief", "+14155550123")]


async def test_a_handler_that_fails_gives_the_default_line() -> None:
    on_warm_transfer(lambda step: 1 / 0)  # type: ignore[arg-type,return-value]
    assert await warm_handler(lambda: None)({"event": "line"}) == {"line": DEFAULT_BRIEFING}


async def test_ringing_is_a_step_the_caller_hears_the_handler_s_line_else_a_default_of_its_own() -> None:
    assert await warm_line(WarmStep("ringing", "+14155550123")) == DEFAULT_RINGING
    on_warm_transfer(lambda step: "One moment, Ana." if step.event == "ringing" else None, steps=("ringing",))
    assert await warm_line(WarmStep("ringing", "+14155550123")) == "One moment, Ana."
    # Nothing running: nothing said, and the step is no refusal.
    assert await warm_handler(lambda: None)({"event": "ringing", "to": "+14155550123"}) == {"spoken": False}


async def test_a_handler_that_declares_ringing_is_asked_for_it_and_an_unknown_step_is_refused() -> None:
    @on_warm_transfer(steps=("brief", "ringing", "failed"))
    def lines(step: WarmStep) -> str:
        return {"brief": "A caller about order 1042.", "ringing": "Calling the desk now."}.get(step.event, "Sorry.")

    assert await warm_line(WarmStep("ringing", "+14155550123")) == "Calling the desk now."
    assert await warm_line(WarmStep("failed", reason="person_busy")) == "Sorry."
    with pytest.raises(ValueError, match="ringnig"):
        on_warm_transfer(lines, steps=("ringnig",))

"""The first example of docs/evals.md passes against the booking line as it is written there: it places
the very turns of the line's own "book a table" scenario, whose real call test_eval_dispatcher.py
places through a real dispatcher (that call heard these words and was answered), and its expectations,
judged by the eval's own checks, accept the answers the line's flow gives to those words."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.examples import BOOKING, use_example
from voicefleet.evals.checks import Answer, failures, words
from voicefleet.evals.scenario import load_scenario

use_example(BOOKING)
from booking_flow import BookingFlow  # noqa: E402  (the line's own flow, as its bot answers)

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUITE_CALL = BOOKING / "scenarios" / "book_a_table.toml"


def test_the_docs_first_example_passes_on_the_booking_lines_answers(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", (DOCS / "evals.md").read_text(), re.DOTALL)
    assert example is not None
    (tmp_path / "example.toml").write_text(example.group(1))
    docs, suite = load_scenario(tmp_path / "example.toml"), load_scenario(SUITE_CALL)
    # What the caller does is the suite call's: the same words, turn by turn, the same greeting awaited.
    assert [turn.said for turn in docs.turns] == [turn.said for turn in suite.turns]
    assert (docs.transport, docs.call.greeting is None) == (suite.transport, suite.call.greeting is None)
    flow = BookingFlow()
    greeting = flow.greeting()
    assert docs.call.greeting is not None
    assert failures(docs.call.greeting, Answer(greeting.text, 500.0)) == []
    replies = [flow.reply(words(turn.said)) for turn in docs.turns]  # as the recogniser hands them on
    heard = {turn.said: failures(turn.expect, Answer(reply.text, 900.0))
             for turn, reply in zip(docs.turns, replies, strict=True)}
    assert heard == dict.fromkeys(heard, []), heard
    # `bot_ends`: the line hangs up after the last turn's answer, and only then.
    assert docs.call.bot_ends and [reply.ends_call for reply in replies] == [False, False, True], replies

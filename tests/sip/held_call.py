"""A call from a trunk's address, answered by the edge and acknowledged, kept up while a test sends the edge what a
scanner or a fuzzer would, then ended by the trunk's BYE (tests/sip/test_sipvicious.py, test_fuzzed_corpus.py)."""

from __future__ import annotations

from tests.sip.conftest import EdgeProcess
from tests.sip.raw_sip import RawSip, status_of

ANSWER_SECONDS = 30.0  # generous: the machine may be loaded


class HeldCall:
    """The call from `source` to `number`, answered 200 and acknowledged once constructed."""

    def __init__(self, edge: EdgeProcess, source: str, number: str) -> None:
        self.number = number
        self.sip = RawSip(source, edge.sip_port)
        dialog = self.sip.invite(number)
        answer = self.sip.final_answer(ANSWER_SECONDS)
        if answer is None or status_of(answer) != 200:
            self.sip.close()
            raise AssertionError(f"the call was not answered: {answer}\n{edge.log()[-3000:]}")
        self.dialog = dialog.answered(answer)
        self.sip.in_dialog("ACK", number, self.dialog, 1)

    def end(self) -> tuple[list[str], str | None]:
        """What the edge sent the trunk since its answer, then the trunk's BYE and the edge's final answer to it."""
        meanwhile = self.sip.answers(0.5)
        self.sip.in_dialog("BYE", self.number, self.dialog, 99)
        try:
            return meanwhile, self.sip.final_answer(ANSWER_SECONDS)
        finally:
            self.sip.close()

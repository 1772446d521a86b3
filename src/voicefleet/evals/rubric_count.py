"""How many rubrics a suite holds: each is judged only when a judge is named."""

from __future__ import annotations

from collections.abc import Sequence

from voicefleet.evals.scenario import Scenario


def rubrics(scenarios: Sequence[Scenario]) -> int:
    return sum((s.call.rubric is not None) + sum(t.expect.rubric is not None for t in s.turns) for s in scenarios)

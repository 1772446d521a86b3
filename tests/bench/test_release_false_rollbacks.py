"""The false-rollback bench's harness on a tiny run: it prints its tables, and a canary whose every
session fails (its bot raising, or its machine dying at boot) is rolled back at the rule's minimum
sample, before and after an operator's weight change, and at the stable release's minimum sample
when the canary's failures all came first; one 1 s slower every turn, within 40 sessions."""

from __future__ import annotations

import random

from bench.release_breach_order import order_lines
from bench.release_false_rollbacks import Callers, died_at_boot, main, upper_bound
from dispatcher.releases.health import HealthRule


def test_a_tiny_run_prints_both_tables() -> None:
    lines: list[str] = []
    main(["--days", "1", "--trials", "2", "--seed", "3"], out=lines.append)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["no incident"].startswith("| no incident | 1 | 0 | 0.0000 |")
    minimum = HealthRule().min_canary
    assert rows["bot() raises"] == f"| bot() raises | {minimum} | {minimum} | {minimum} | {minimum * 2} min | 0 of 2 |"
    assert set(rows) >= {"a 15-min incident a day, every release", "answers 3 s late", "10 % fail"}
    # A canary whose machines die before their bots report is judged, from the provider's word, as fast.
    assert rows["machine dies at boot"].startswith(f"| machine dies at boot | {minimum} | {minimum} | {minimum} |")
    # An operator's weight change keeps the stable release's sample: still the minimum, at 50 % too.
    assert rows["bot() raises, set to 50 %"].startswith(f"| bot() raises, set to 50 % | {minimum} | {minimum} |")
    assert rows["machine dies at boot, set to 20 %"].startswith(f"| machine dies at boot, set to 20 % | {minimum} |")
    # A canary 1 s slower every turn is rolled back on its conversation within 40 sessions.
    slower = rows["1 s slower per turn"].split(" | ")
    assert int(slower[3]) <= 40 and slower[-1] == "0 of 2 |", rows["1 s slower per turn"]


def test_the_simulated_callers_fail_at_the_stated_rates() -> None:
    rng = random.Random(0)
    outcomes = [Callers().draw(rng, "stable") for _ in range(20_000)]
    failed = sum(o.failure is not None for o in outcomes) / len(outcomes)
    assert 0.017 < failed < 0.023  # 2 % ± 3.5 standard errors


def test_the_upper_bound_is_clopper_pearsons() -> None:
    assert abs(upper_bound(0, 100) - (1 - 0.05 ** (1 / 100))) < 1e-9  # the rule of three's exact form
    assert upper_bound(5, 5) == 1.0


def test_a_breach_the_stable_sample_completes_is_acted_on_at_the_stable_minimum() -> None:
    lines = order_lines(random.Random(5), HealthRule(), 10.0, 3, lambda rng: Callers().draw(rng, "stable"),
                        died_at_boot("canary"))
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in lines[2:]}
    for share in ("20 %", "50 %"):
        # The dispatcher's way: the session that completes the stable's sample is the one judged, at once.
        assert rows[share, "every session (the dispatcher)"].endswith("| 3 of 3 | 0.0 | 0.0 | 0 | 0 |")
        waited = float(rows[share, "the canary's sessions only"].split("|")[4])
        assert waited > 0.0  # judged at the canary's next session only, the canary kept its traffic till then

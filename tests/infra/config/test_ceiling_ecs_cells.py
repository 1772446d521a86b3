"""The ceiling of Fargate bots over `ecsCells` (stacks/config/ceiling_cells.py `fargate_cells`): each account has its
own launch bucket (100, 20 a second) and its own vCPU quota, so both add up over the accounts; the warm reserve runs
over the cells, so its bots count; the cells' quotas are their documented defaults (accountQuotas reads only the
stack's own account), and the stack's own account, which runs the dispatcher, holds none of the bots."""

from __future__ import annotations

import json

from stacks.config import ceiling
from stacks.config.ceiling_cells import fargate_cells
from stacks.config.ceiling_notes import said, stack_notes

ACCOUNTS = [f"{name} ({account * 12})" for name, account in zip("abc", "123", strict=True)]


def aws_stack(sessions: int, cells: list[dict[str, str]], **more: str) -> dict[str, str]:
    return {"voicefleet:cloud": "aws", "aws:region": "eu-west-1", "voicefleet:botCpu": "1024",
            "voicefleet:botMemory": "2048", "voicefleet:maxConcurrentSessions": str(sessions),
            "voicefleet:ecsCells": json.dumps(cells), **{f"voicefleet:{k}": v for k, v in more.items()}}


def test_three_accounts_hold_three_times_one_accounts_launches_and_vcpus() -> None:
    one = fargate_cells(ACCOUNTS[:1], "eu-west-1", 1024, 4)
    three = fargate_cells(ACCOUNTS, "eu-west-1", 1024, 4)
    (rate1, vcpus1), (rate3, vcpus3) = one.limits, three.limits
    assert (rate1.figure, rate3.figure) == (20, 60) and rate3.bots == 3 * rate1.bots == 3 * 20 * 240
    # 6 vCPUs each (the documented default), no dispatcher task in a cell: 6 one-vCPU bots an account
    assert (vcpus1.figure, vcpus1.bots, vcpus3.figure, vcpus3.bots) == (6, 6, 18, 18)
    assert vcpus3.code == ceiling.FARGATE_VCPU_QUOTA_CODE and vcpus3.taken == 0
    assert three.where == "eu-west-1, 3 accounts (ecsCells: a (111111111111); b (222222222222); c (333333333333))"
    assert "accountQuotas reads only the stack's own account" in vcpus3.how


def test_the_one_account_ceiling_still_takes_the_dispatchers_vcpus_from_its_own_quota() -> None:
    own = ceiling.fargate("eu-west-1", 1024, 4, dispatchers=ceiling.Dispatchers(1, 1024))
    assert own.limits[1].bots == 4  # (6 - 2 during a deploy) ÷ 1: the cells' 6 each are the bots' alone


def test_the_reserve_runs_over_the_cells_and_past_the_sum_the_warning_names_each_accounts_share() -> None:
    found = fargate_cells(ACCOUNTS, "eu-west-1", 1024, 4)
    _, warnings = said(found, 15, 5)
    (warning,) = warnings
    assert warning.startswith("maxConcurrentSessions=15 + reserveMaxIdle=5 = 20 bots is above the Fargate On-Demand "
                              "vCPU resource count (L-3032A538) of 18 vCPUs")
    assert "which holds 13 sessions at once" in warning and "the stack needs 20 vCPUs" in warning
    assert ("--desired-value SHARE --region eu-west-1`, SHARE being the account's part of the 20 vCPUs in all "
            "(about 20 ÷ 3") in warning
    assert said(found, 13, 5)[1] == []


def test_a_stack_files_cells_count_in_the_plans_note() -> None:
    cells = [{"name": n, "role_arn": f"arn:aws:iam::{d * 12}:role/voicefleet-cell"} for n, d in zip("ab", "12",
                                                                                                   strict=True)]
    note, *rest = stack_notes(aws_stack(20, cells))
    assert "concurrency ceiling (Fargate, eu-west-1, 2 accounts (ecsCells: a (111111111111); b (222222222222)))" in note
    warnings = [line for line in rest if line.startswith("warning: ")]
    assert "12 sessions at once" in note and len(warnings) == 1
    assert rest[-1].startswith("note: store ceiling (ElastiCache")  # the cells share a store
    (alone, *_) = stack_notes(aws_stack(20, []))
    assert "concurrency ceiling (Fargate, eu-west-1): 5 sessions at once" in alone  # (6 - 0.5) ÷ 1, one account
    assert stack_notes(aws_stack(20, [{"name": "a"}])) == []  # a list the dispatcher refuses: the check names it

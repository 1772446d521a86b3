"""bench/mutation.py runs a mutant only against the tests that ran its statement."""

from __future__ import annotations

from bench.mutation import Coverage

SOURCE = '''import os


def pick(flag):
    if flag:
        return os.sep
    return os.pathsep
'''
TRACE = {"import": [1, 4], "tests": {"test_yes": [5, 6], "test_no": [5, 7]},
         "order": ["test_no", "test_yes", "test_other"]}


def test_a_mutant_runs_the_tests_that_ran_its_statement_in_their_order() -> None:
    coverage = Coverage(TRACE, SOURCE)
    assert coverage.tests_for(6) == ["test_yes"]
    assert coverage.tests_for(7) == ["test_no"]
    assert coverage.tests_for(5) == ["test_no", "test_yes"]  # the `if` and its body: both ran it


def test_a_statement_run_at_import_runs_every_test() -> None:
    assert Coverage(TRACE, SOURCE).tests_for(4) is None  # a def line: defaults are evaluated at import
    assert Coverage(TRACE, SOURCE).tests_for(1) is None


def test_a_statement_no_test_ran_has_no_test() -> None:
    trace = {**TRACE, "tests": {"test_yes": [5, 6]}}
    assert Coverage(trace, SOURCE).tests_for(7) == []

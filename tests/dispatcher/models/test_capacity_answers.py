"""Which answers of `GET /api/capacity` are a capacity (dispatcher/models/capacity.py's `parse_capacity`):
the decision, answer by answer, in-process. A real dispatcher reporting one such answer as unknown and
refusing starts on it: test_model_service_admission.py."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.models.capacity import parse_capacity

NO_CAPACITY: dict[str, Any] = {
    "negative": {"free": -1, "total": 2}, "a word": {"free": "two", "total": 2},
    "a fraction": {"free": 1.5, "total": 2},
    "a boolean": {"free": True, "total": 2}, "more free than total": {"free": 3, "total": 2},
    "no free": {"total": 2}, "no object": "plenty", "a list": [1, 2], "a negative total": {"free": 0, "total": -1},
}


@pytest.mark.parametrize("answer", list(NO_CAPACITY.values()), ids=list(NO_CAPACITY))
def test_an_answer_that_is_no_capacity_says_what_is_wrong(answer: Any) -> None:
    with pytest.raises(ValueError) as wrong:
        parse_capacity(answer)
    assert str(wrong.value)  # the words /status and the refusal show


@pytest.mark.parametrize(("answer", "read"), [({"free": 0, "total": 2}, (0, 2)), ({"free": 2, "total": 2}, (2, 2)),
                                              ({"free": 1, "total": 4, "model": "moshi"}, (1, 4))])
def test_a_capacity_is_its_free_and_total(answer: dict[str, Any], read: tuple[int, int]) -> None:
    assert parse_capacity(answer) == read

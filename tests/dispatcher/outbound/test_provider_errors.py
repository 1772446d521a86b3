"""One mapping from provider failures to HTTP answers, shared by every provider and Daily."""

from __future__ import annotations

import pytest

from dispatcher.errors import ApiError
from dispatcher.machines.base import MachinesError
from dispatcher.media.daily import DailyError
from dispatcher.outbound.provider_errors import DEFAULT_RETRY_AFTER, ProviderError, as_api_error, refusal


def test_a_room_failure_is_not_a_machine_failure() -> None:
    assert not issubclass(DailyError, MachinesError)
    assert issubclass(DailyError, ProviderError) and issubclass(MachinesError, ProviderError)


@pytest.mark.parametrize("error", [MachinesError, DailyError])
@pytest.mark.parametrize(
    ("status", "capacity", "reason", "retry_after"),
    [
        (401, None, "p_unauthorized", None),
        (403, None, "p_unauthorized", None),  # a permission problem does not pass by waiting
        (403, 30.0, "p_capacity", 30.0),  # unless the provider says it is quota (GCE: quotaExceeded)
        (400, None, "p_rejected", None),
        (404, None, "p_rejected", None),
        (None, 10.0, "p_capacity", 10.0),
        (400, 30.0, "p_capacity", 30.0),
    ],
)
def test_refusal_reasons_are_the_same_for_every_provider(
    error: type[ProviderError], status: int | None, capacity: float | None, reason: str, retry_after: float | None
) -> None:
    refused = refusal(error, "p", status, "no", capacity_retry_after=capacity)
    assert type(refused) is error
    assert (refused.reason, refused.retry_after, refused.message) == (reason, retry_after, "no")


@pytest.mark.parametrize("error", [MachinesError, DailyError])
def test_a_retry_hint_answers_503_else_502(error: type[ProviderError]) -> None:
    later = as_api_error(error("p_throttled", "slow down", retry_after=3.0))
    assert (later.status, later.code, later.retry_after) == (503, "p_throttled", 3.0)
    assert "slow down" not in later.message and "p_throttled" in later.message  # the provider's words stay in the log
    refused = as_api_error(error("p_rejected", "no"))
    assert (refused.status, refused.code, refused.retry_after) == (502, "p_rejected", None)


def test_an_unexpected_failure_is_a_retryable_503_never_a_500() -> None:
    answer = as_api_error(RuntimeError("boom"))
    assert (answer.status, answer.code, answer.retry_after) == (503, "provider_unavailable", DEFAULT_RETRY_AFTER)
    assert "boom" not in answer.message
    own = ApiError(409, "idempotency_conflict", "x")
    assert as_api_error(own) is own


@pytest.mark.parametrize("error", [MachinesError, DailyError])
def test_a_provider_error_reads_as_its_message_in_logs(error: type[ProviderError]) -> None:
    assert str(error("p_rejected", "Fly refused to create a machine")) == "Fly refused to create a machine"

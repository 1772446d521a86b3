"""What the dispatcher makes of the model service's settings and of an answer grown old."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.factory import configuration_problems
from dispatcher.models.capacity import ModelServiceCapacity
from dispatcher.models.settings import ModelServiceSettings
from dispatcher.settings import SettingsError
from tests.fakes.moshi_server import model_server_process


@pytest.mark.parametrize("url", ["moshi.internal:8998", "ws://moshi.internal:8998", "http://", "ftp://x"])
def test_a_url_that_is_no_http_url_is_refused_at_start_up_naming_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="must be an http:// or https:// URL") as refused:
        ModelServiceSettings.from_env({"MODEL_SERVICE_URL": url})
    assert str(refused.value).startswith(f"MODEL_SERVICE_URL={url.rstrip('/')!r}")


def test_config_check_and_a_start_report_it_with_every_other_problem() -> None:
    problems = configuration_problems({"MODEL_SERVICE_URL": "http://moshi:8998", "MODEL_SERVICE_READ_SECONDS": "0"})
    assert [p for p in problems if "MODEL_SERVICE" in p] == ["MODEL_SERVICE_READ_SECONDS=0 must be at least 0.2"]
    # 0 would stop this replica counting its own starts: a burst within one read would all pass
    problems = configuration_problems({"MODEL_SERVICE_URL": "http://moshi:8998", "MODEL_SERVICE_CONNECT_SECONDS": "0"})
    assert [p for p in problems if "MODEL_SERVICE" in p] == ["MODEL_SERVICE_CONNECT_SECONDS=0 must be at least 1"]
    problems = configuration_problems({"MODEL_SERVICE_URL": "moshi.internal:8998"})
    assert any(p.startswith("MODEL_SERVICE_URL='moshi.internal:8998' must be an http://") for p in problems), problems


def test_unset_means_no_service_and_a_password_in_the_url_is_never_shown() -> None:
    assert ModelServiceSettings.from_env({}) is None
    settings = ModelServiceSettings.from_env({"MODEL_SERVICE_URL": "https://user:secret@moshi.internal/models/"})
    assert settings is not None and settings.shown == "https://moshi.internal/models"
    assert settings.capacity_url == "https://user:secret@moshi.internal/models/api/capacity"


def test_a_url_with_a_query_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError, match="without a query") as refused:
        ModelServiceSettings.from_env({"MODEL_SERVICE_URL": "https://moshi.internal/?token=secret"})
    assert "secret" not in str(refused.value)


def test_an_answer_older_than_three_intervals_is_unknown_not_its_last_count() -> None:
    now = [0.0]
    with model_server_process(streams=3) as model:
        capacity = ModelServiceCapacity(ModelServiceSettings(model.url, read_seconds=1.0), clock=lambda: now[0])

        async def read_then_age() -> None:
            try:
                fresh = await capacity.read_now()
                assert (fresh.known, fresh.free, fresh.total) == (True, 3, 3)
                now[0] = 3.0  # three intervals: still the last answer
                assert capacity.reading().free == 3
                now[0] = 3.1
                stale = capacity.reading()
                assert (stale.known, stale.free, stale.total) == (False, None, None)
                assert stale.problem == "its last answer is 3.1 s old (stale past 3 s)"
            finally:
                await capacity.aclose()

        asyncio.run(read_then_age())


def test_a_password_in_a_url_that_is_refused_is_not_repeated() -> None:
    with pytest.raises(SettingsError) as refused:
        ModelServiceSettings.from_env({"MODEL_SERVICE_URL": "ws://user:secret@moshi:8998"})
    assert "secret" not in str(refused.value) and "moshi:8998" in str(refused.value)

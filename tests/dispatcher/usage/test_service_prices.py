"""The services' price table (dispatcher/usage/prices.json, cited, dated; USAGE_PRICES over it) and a
session's services priced by it: what is in the table at its rates, what is not "not priced", never 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.settings import SettingsError
from dispatcher.usage.price_table import BUILT_IN, load_prices
from dispatcher.usage.service_cost import NOT_PRICED, price_usage

CALL = 120.0  # a session's seconds, which bound its services' counts
MINI = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini",
        "prompt_tokens": 2700, "completion_tokens": 120, "cache_read_input_tokens": 1200}


def test_every_built_in_price_is_dated_and_cited() -> None:
    document = json.loads(BUILT_IN.read_text())
    assert document["as_of"] and document["prices"]
    for entry in document["prices"]:
        assert entry["source"].startswith("https://") and entry["seen"], entry
    assert load_prices({}).as_of == document["as_of"]


def test_an_openai_llm_is_priced_without_counting_its_cache_reads_twice() -> None:
    cost = price_usage(load_prices({}), [MINI], CALL)
    # prompt_tokens includes the cache reads (OpenAI's count): 1500 at the input rate, 1200 at the cached one.
    assert cost.usd == pytest.approx((1500 * 0.15 + 1200 * 0.075 + 120 * 0.60) / 1e6)
    [row] = cost.as_json()["usage"]
    assert row["price_source"] == "https://developers.openai.com/api/docs/pricing"


def test_a_model_not_in_the_table_is_not_priced_never_zero() -> None:
    unknown = {"kind": "stt", "processor": "DeepgramSTTService#0", "model": "nova-3", "audio_seconds": 93.5}
    cost = price_usage(load_prices({}), [MINI, unknown], CALL)
    shown = cost.as_json()
    assert shown["not_priced"] == ["stt nova-3"]
    assert shown["usage"][1]["priced"] == NOT_PRICED and "usd" not in shown["usage"][1]
    assert "no price for stt model nova-3" in shown["usage"][1]["why"]
    assert cost.usd == price_usage(load_prices({}), [MINI], CALL).usd  # the priced rows only
    # A count the entry has no rate for (audio tokens of a text model's price): the row is not priced.
    audio = {**MINI, "input_audio_tokens": 300}
    assert price_usage(load_prices({}), [audio], CALL).unpriced == ["llm gpt-4o-mini"]
    assert price_usage(load_prices({}), None, CALL).as_json()["reported"] is False


def test_a_deployment_overrides_a_price_and_adds_one_from_a_file(tmp_path: Path) -> None:
    mine = tmp_path / "prices.json"
    mine.write_text(json.dumps({"as_of": "2026-12-01", "prices": [
        {"kind": "stt", "model": "nova-3", "rates": {"audio_seconds": 0.0077}, "source": "our Deepgram contract"},
        {"kind": "tts", "model": "tts-1", "rates": {"characters": 10.0}, "source": "our OpenAI discount"}]}))
    table = load_prices({"USAGE_PRICES": str(mine)})
    usage = [{"kind": "stt", "processor": "s", "model": "nova-3", "audio_seconds": 120.0},
             {"kind": "tts", "processor": "t", "model": "tts-1", "characters": 1000}]
    assert price_usage(table, usage, CALL).usd == pytest.approx(2 * 0.0077 + 1000 * 10.0 / 1e6)
    assert table.price("llm", "gpt-4o-mini") is not None  # the built-in entries stay under it
    inline = load_prices({"USAGE_PRICES": mine.read_text()})
    assert inline.entries == table.entries


@pytest.mark.parametrize("entry, says", [
    ({"kind": "llm", "model": "m", "rates": {"prompt_tokens": -0.1}, "source": "s"},
     "prices[0] (llm m): the rate of prompt_tokens must be a number of dollars ≥ 0"),
    ({"kind": "llm", "model": "m", "rates": {"prompt_tokens": 1e308}, "source": "s"},
     "prices[0] (llm m): the rate of prompt_tokens is 1e+308 dollars, over the 1e+06 a price table takes"),
    ({"kind": "llm", "model": "m", "rates": {"promt_tokens": 0.1}, "source": "s"},
     "prices[0] (llm m): 'promt_tokens' is not a count of a llm service"),
    ({"kind": "tts", "model": "m", "rates": {"characters": 1}}, "prices[0] (tts m): source must say"),
    ({"kind": "video", "model": "m", "rates": {}, "source": "s"}, "prices[0]: kind must be one of"),
    ({"kind": "tts", "model": "m", "rates": {"characters": 1}, "source": "s", "sorce": "x"},
     "unknown field 'sorce'"),
])
def test_a_typo_or_a_negative_price_is_refused_naming_the_entry(entry, says) -> None:
    with pytest.raises(SettingsError) as refused:
        load_prices({"USAGE_PRICES": json.dumps({"prices": [entry]})})
    assert says in str(refused.value)
    assert str(refused.value).startswith("USAGE_PRICES")


def test_a_file_that_is_not_there_or_not_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_prices({"USAGE_PRICES": str(tmp_path / "missing.json")})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SettingsError, match="not JSON"):
        load_prices({"USAGE_PRICES": str(tmp_path / "bad.json")})


def test_a_sessions_total_is_its_machine_and_its_priced_services() -> None:
    from dispatcher.reserve.prices import BotPrice
    from dispatcher.sessions.cost import NOT_YET, UNREPORTED, SessionCosts

    costs = SessionCosts("fly", BotPrice(5.78, "shared-cpu-1x", "https://fly.io/docs/about/pricing/"),
                         prices=load_prices({}))
    launched = {"event": "launched", "at": 100.0}
    cost = costs.of([launched, {"event": "ended", "at": 160.0, "usage": [MINI]}], running=False)
    assert cost is not None and cost.services is not None
    assert cost.total == pytest.approx(cost.machine_usd + price_usage(load_prices({}), [MINI], CALL).usd)
    assert not any("LLM, STT and TTS" in line for line in cost.not_counted)
    unreported = costs.of([launched, {"event": "ended", "at": 160.0}], running=False)
    assert unreported is not None and UNREPORTED in unreported.not_counted
    assert unreported.total == unreported.machine_usd  # nothing counted for what was not reported
    live = costs.of([launched], running=True)
    assert live is not None and NOT_YET in live.not_counted


async def test_a_sessions_read_prices_its_bots_last_report_when_its_end_carries_none() -> None:
    """`GET /sessions/{id}`, the ended webhook and `/metrics` read a session's cost through
    `of_session`: a bot killed before its `ended` report (or still running) is priced as it last
    reported during the call; a store that does not answer leaves it not reported, or raises for a
    count that is tried again."""
    from dispatcher.reserve.prices import BotPrice
    from dispatcher.sessions.cost import UNREPORTED, SessionCosts
    from dispatcher.store.unavailable import StoreUnavailable
    from dispatcher.store.usage_so_far import MemorySoFar

    costs = SessionCosts("fly", BotPrice(5.78, "shared-cpu-1x", "https://fly.io/docs/about/pricing/"),
                         prices=load_prices({}))
    costs.so_far = kept = MemorySoFar()
    await kept.put("s-1", (MINI,))
    killed = [{"event": "launched", "at": 100.0}, {"event": "machine_ended", "at": 160.0}]
    cost = await costs.of_session("s-1", killed, running=False)
    assert cost is not None and cost.services is not None and cost.services.usd == pytest.approx(
        price_usage(load_prices({}), [MINI], CALL).usd)
    reported = await costs.of_session("s-1", [*killed, {"event": "ended", "at": 161.0, "usage": []}], running=False)
    assert reported is not None and reported.services is not None and reported.services.usd == 0  # its own report

    class Down(MemorySoFar):
        async def get(self, session_id: str) -> None:
            raise StoreUnavailable("connection refused")

    costs.so_far = Down()
    unread = await costs.of_session("s-1", killed, running=False)
    assert unread is not None and UNREPORTED in unread.not_counted
    with pytest.raises(StoreUnavailable):
        await costs.of_session("s-1", killed, running=False, strict=True)

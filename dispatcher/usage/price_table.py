"""The services' price table: per kind of service and model, a rate per count, each price cited.

The table is a data file (dispatcher/usage/prices.json), dated, each entry with its `source` and when
it was `seen`: a price enters it only with a vendor's published page to cite. A deployment adds or
replaces entries with `USAGE_PRICES` (a path to a file of the same shape, or the JSON itself); an
entry there replaces the built-in one for the same kind and model. Units: tokens and characters in
dollars per million, `audio_seconds` in dollars per minute of audio, as vendors publish them.

A model with no entry is "not priced", never priced at 0; so is a row with a count its entry has no
rate for (dispatcher/usage/service_cost.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botchannel.usage import COUNTS
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_text

BUILT_IN = Path(__file__).with_name("prices.json")
PER_UNIT = {"audio_seconds": 60.0}  # dollars per minute; every other count: per million
PER_MILLION = 1_000_000.0
MAX_RATE = 1_000_000.0  # dollars per million counts (or per minute): far past any service's price
ENTRY_FIELDS = {"kind", "model", "rates", "source", "seen", "prompt_includes_cache"}


@dataclass(frozen=True)
class ServicePrice:
    kind: str
    model: str
    rates: Mapping[str, float]  # count → dollars per million (per minute for audio_seconds)
    source: str
    seen: str
    prompt_includes_cache: bool = False  # the service's prompt_tokens count the cache reads (OpenAI's do)

    def dollars_per(self, count: str) -> float | None:
        rate = self.rates.get(count)
        return None if rate is None else rate / PER_UNIT.get(count, PER_MILLION)


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    entries: Mapping[tuple[str, str], ServicePrice]

    def price(self, kind: str, model: str | None) -> ServicePrice | None:
        return None if model is None else self.entries.get((kind, model))


def load_prices(env: Mapping[str, str], built_in: Path = BUILT_IN) -> PriceTable:
    """The built-in table with the deployment's `USAGE_PRICES` over it; raises `SettingsError` naming
    the entry and what is wrong with it."""
    table = _table(json.loads(built_in.read_text()), str(built_in))
    override = setting_text(env, "USAGE_PRICES")
    if not override:
        return table
    where = "USAGE_PRICES"
    if not override.lstrip().startswith("{"):
        path = Path(override)
        try:
            override = path.read_text()
        except OSError as exc:
            raise SettingsError(f"USAGE_PRICES: cannot read {path}: {exc.strerror}; give a JSON file's path or "
                                "the JSON itself") from None
        where = f"USAGE_PRICES ({path})"
    try:
        document = json.loads(override)
    except ValueError as exc:
        raise SettingsError(f"{where}: not JSON ({exc}); docs/operations.md shows the shape") from None
    theirs = _table(document, where)
    return PriceTable(theirs.as_of or table.as_of, {**table.entries, **theirs.entries})


def _table(document: object, where: str) -> PriceTable:
    if not isinstance(document, dict) or not isinstance(document.get("prices"), list):
        raise SettingsError(f"{where}: expected an object with a `prices` list")
    as_of = document.get("as_of", "")
    if not isinstance(as_of, str):
        raise SettingsError(f"{where}: as_of must be a date, e.g. \"2026-11-27\"")
    entries: dict[tuple[str, str], ServicePrice] = {}
    for n, entry in enumerate(document["prices"]):
        price = _entry(entry, f"{where}: prices[{n}]")
        if (price.kind, price.model) in entries:
            raise SettingsError(f"{where}: prices[{n}] ({price.kind} {price.model}) is priced twice")
        entries[(price.kind, price.model)] = price
    return PriceTable(as_of, entries)


def _entry(entry: object, where: str) -> ServicePrice:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be an object")
    kind, model = entry.get("kind"), entry.get("model")
    if kind not in COUNTS:
        raise SettingsError(f"{where}: kind must be one of {', '.join(COUNTS)}, not {kind!r}")
    if not isinstance(model, str) or not model:
        raise SettingsError(f"{where}: model must be the model's name as its service reports it")
    where = f"{where} ({kind} {model})"
    unknown = sorted(set(entry) - ENTRY_FIELDS)
    if unknown:
        raise SettingsError(f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(sorted(ENTRY_FIELDS))}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SettingsError(f"{where}: source must say where the price comes from (a vendor's page, a contract)")
    rates = entry.get("rates")
    if not isinstance(rates, dict) or not rates:
        raise SettingsError(f"{where}: rates must name at least one of {', '.join(COUNTS[kind])}")
    for name, rate in rates.items():
        if name not in COUNTS[kind]:
            raise SettingsError(f"{where}: {name!r} is not a count of a {kind} service; "
                                f"one of {', '.join(COUNTS[kind])}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
            raise SettingsError(f"{where}: the rate of {name} must be a number of dollars ≥ 0, not {rate!r}")
        if rate > MAX_RATE:  # a slip of units (per token for per million): sums past it reach infinity
            raise SettingsError(f"{where}: the rate of {name} is {rate:g} dollars, over the {MAX_RATE:g} a "
                                "price table takes (rates are dollars per million counts, per minute of audio)")
    seen, gross = entry.get("seen", ""), entry.get("prompt_includes_cache", False)
    if not isinstance(seen, str) or not isinstance(gross, bool):
        raise SettingsError(f"{where}: seen must be text (when the price was read) and prompt_includes_cache "
                            "true or false")
    return ServicePrice(kind, model, {k: float(v) for k, v in rates.items()}, source, seen, gross)


def price_json(price: ServicePrice) -> dict[str, Any]:
    return {"rates": dict(price.rates), "source": price.source, "seen": price.seen}

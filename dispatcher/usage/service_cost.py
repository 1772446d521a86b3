"""What a session's services cost: each row of its bot's reported usage (botchannel/usage.py) at the
price table's rates (dispatcher/usage/price_table.py).

    LLM  (prompt − the parts it includes) × prompt rate + cache reads × their rate + cache writes × theirs
         + input audio tokens × theirs + (completion − output audio) × completion rate + output audio × theirs
    TTS  characters × the characters rate          STT  audio_seconds / 60 × the per-minute rate

A service whose prompt count includes its cache reads and audio tokens (OpenAI's, `prompt_includes_cache`)
has them taken out of the prompt first, so nothing is counted twice; reasoning tokens are part of
the completion and not priced again. A row is priced only when every count it has is: a model not in
the table, or a count without a rate, leaves the row "not priced" (its amount left out, never 0),
and the session's `services_usd` is the sum of the priced rows only. Each count is first bounded by
the session's length, summed over the rows of its kind (dispatcher/usage/service_bounds.py): what a
bot reported past it is counted at the bound, and the row and the cost's `not_counted` say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dispatcher.usage.price_table import PriceTable, ServicePrice
from dispatcher.usage.service_bounds import bounded_rows

NOT_PRICED = "not priced"
UNPRICED_COUNTS = ("reasoning_tokens",)  # part of completion_tokens: never priced on its own
# In a gross count (prompt_includes_cache): the parts each total includes, each priced at its own rate.
PARTS = {"prompt_tokens": ("cache_read_input_tokens", "input_audio_tokens", "cache_read_input_audio_tokens"),
         "completion_tokens": ("output_audio_tokens",)}


@dataclass(frozen=True)
class RowCost:
    row: Mapping[str, Any]
    usd: float | None
    why: str | None  # None when priced
    source: str | None
    cut: Mapping[str, float] = field(default_factory=dict)  # count → the bot's figure, past its bound

    def as_json(self) -> dict[str, Any]:
        shown = dict(self.row)
        if self.cut:
            shown["cut"] = dict(self.cut)
        if self.usd is not None:
            shown["usd"] = round(self.usd, 6)
            shown["price_source"] = self.source
        else:
            shown["priced"] = NOT_PRICED
            shown["why"] = self.why
        return shown


@dataclass(frozen=True)
class ServicesCost:
    rows: tuple[RowCost, ...]
    reported: bool  # False: the bot ended without reporting its usage

    @property
    def usd(self) -> float:
        """The priced rows' sum (the unpriced ones are listed, not counted)."""
        return sum(row.usd for row in self.rows if row.usd is not None)

    @property
    def unpriced(self) -> list[str]:
        return [f"{row.row.get('kind')} {row.row.get('model') or row.row.get('processor')}"
                for row in self.rows if row.usd is None]

    @property
    def cut(self) -> list[str]:
        """Each row whose counts went past the session's bounds, and which."""
        return [f"{row.row.get('kind')} {row.row.get('model') or row.row.get('processor')}: the bot's "
                f"{', '.join(sorted(row.cut))} past what the session's length allows, cut there"
                for row in self.rows if row.cut]

    def as_json(self) -> dict[str, Any]:
        return {"reported": self.reported, "usd": round(self.usd, 6), "not_priced": self.unpriced,
                "usage": [row.as_json() for row in self.rows]}


def price_usage(table: PriceTable, usage: Sequence[Mapping[str, Any]] | None, seconds: float) -> ServicesCost:
    """`usage`: the bot's rows (None: not reported); `seconds`: the session's, which bound the counts."""
    if usage is None:
        return ServicesCost((), reported=False)
    rows = [replace(_row_cost(table, row), cut=cut) for row, cut in bounded_rows(usage, seconds)]
    return ServicesCost(tuple(rows), reported=True)


def _row_cost(table: PriceTable, row: Mapping[str, Any]) -> RowCost:
    kind, model = str(row.get("kind")), row.get("model")
    price = table.price(kind, model if isinstance(model, str) else None)
    if price is None:
        named = f"{kind} model {model}" if model else f"{kind} service {row.get('processor')} (it named no model)"
        return RowCost(row, None, f"no price for {named} in the table (USAGE_PRICES adds one)", None)
    usd = 0.0
    for count, amount in _counts(price, row).items():
        if amount <= 0 or count in UNPRICED_COUNTS:
            continue
        per = price.dollars_per(count)
        if per is None:
            return RowCost(row, None, f"the price of {kind} {model} has no rate for {count}", price.source)
        usd += amount * per
    return RowCost(row, usd, None, price.source)


def _counts(price: ServicePrice, row: Mapping[str, Any]) -> dict[str, float]:
    counts = {name: float(value) for name, value in row.items()
              if name not in ("kind", "processor", "model") and isinstance(value, int | float)}
    if price.prompt_includes_cache:
        for total, parts in PARTS.items():
            if total in counts:
                counts[total] = max(0.0, counts[total] - sum(counts.get(part, 0.0) for part in parts))
    return counts

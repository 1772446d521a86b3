"""The shape of one setting in the catalogue (voicefleet_settings/catalogue.py), and of the page's
sections it is shown in. Environment variables stay the transport: a setting is its variable's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "integer", "number", "boolean", "enum", "list"]
STRING: Kind = "string"
INTEGER: Kind = "integer"  # a whole number, within `minimum`..`maximum`
NUMBER: Kind = "number"  # a finite decimal, within `minimum`..`maximum` (or above `above`)
BOOLEAN: Kind = "boolean"  # one of TRUE_WORDS or FALSE_WORDS, any case
ENUM: Kind = "enum"  # one of `choices`, any case (read lowercase)
LIST: Kind = "list"  # comma-separated text; with `choices`, each item one of them

# The spellings a boolean setting accepts (env values are text): what the parsers accepted before, together.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Section:
    """A table of the page: `key` is what settings name; `prose` is shown before the table (its
    heading and what applies to every setting in it); `examples` adds the providers' example column."""

    key: str
    prose: str
    examples: bool = False


@dataclass(frozen=True)
class Setting:
    """One variable. `default` is the value unset behaves as, when one value says it (None: unset, required,
    or derived from other settings, as `shown` tells). `row` names the setting whose table row (and
    meaning) this one shares: `START_RATE_PER_KEY` / `START_BURST_PER_KEY`. `aliases` are old names still
    read, each a deprecated spelling of this one. `minimum`, `maximum`, `above` and `choices` are what a
    value may be: voicefleet_settings/read.py applies them, the page and the schema show them."""

    name: str
    section: str
    kind: Kind
    default: str | None = None
    shown: str | None = None  # the default as the page shows it, when more than `default`
    example: str | None = None
    meaning: str = ""
    row: str | None = None
    secret: bool = False
    aliases: tuple[str, ...] = ()
    minimum: float | None = None  # integer and number: the least value accepted
    maximum: float | None = None  # ...and the most
    above: float | None = None  # number: a value must be above this one (a share: above 0)
    choices: tuple[str, ...] = ()  # enum: the values accepted; list: each item's

    @property
    def allowed(self) -> str:
        """What a value may be, in a few words: the page's and the errors' text ("" for any text)."""
        if self.kind == BOOLEAN:
            return ", ".join(f"{yes}/{no}" for yes, no in zip(TRUE_WORDS, FALSE_WORDS, strict=True))
        if self.kind in (ENUM, LIST) and self.choices:
            return ("one of " if self.kind == ENUM else "a comma-separated list of ") + ", ".join(self.choices)
        if self.kind not in (INTEGER, NUMBER):
            return ""
        low = f"above {_number(self.above)}" if self.above is not None else (
            f"at least {_number(self.minimum)}" if self.minimum is not None else "")
        high = f"at most {_number(self.maximum)}" if self.maximum is not None else ""
        return " and ".join(part for part in (low, high) if part)

    @property
    def shown_default(self) -> str:
        """The default column's text."""
        if self.shown is not None:
            return self.shown
        return f"`{self.default}`" if self.default is not None else "unset"


def _number(value: float | None) -> str:
    """A bound as written: `1`, not `1.0`."""
    return f"{value:g}"

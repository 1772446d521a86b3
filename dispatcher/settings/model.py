"""The shape of one setting in the catalogue (dispatcher/settings/catalogue.py), and of the page's
sections it is shown in. Environment variables stay the transport: a setting is its variable's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "integer", "number"]
STRING: Kind = "string"
INTEGER: Kind = "integer"
NUMBER: Kind = "number"


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
    read, each a deprecated spelling of this one."""

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

    @property
    def shown_default(self) -> str:
        """The default column's text."""
        if self.shown is not None:
            return self.shown
        return f"`{self.default}`" if self.default is not None else "unset"

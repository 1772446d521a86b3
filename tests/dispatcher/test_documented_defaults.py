"""docs/configuration.md's tables are the providers' contract with an operator: a variable left
unset behaves as its documented default, and a documented variable set to its example is read.

Parsed from docs/configuration.md ("Cloud providers"), so a default changed in the code alone (or
in the docs alone) fails here. Rows with no default in backquotes (required, or "nearest") are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.gce.provider import GceSettings
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.media.daily import DailySettings
from dispatcher.settings import SettingsError

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REQUIRED: dict[str, dict[str, str]] = {
    "gce": {"GCE_PROJECT": "p", "GCE_ZONE": "z", "GCE_INSTANCE_TEMPLATE": "t"},
    "fly": {"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i"},
    "daily": {"DAILY_API_KEY": "k"},
    "modal": {"MODAL_TOKEN_ID": "ak-1", "MODAL_TOKEN_SECRET": "as-1", "MODAL_APP": "a", "MODAL_BOT_IMAGE": "im-1"},
}
FROM_ENV: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "gce": GceSettings.from_env, "fly": FlySettings.from_env, "daily": DailySettings.from_env,
    "modal": ModalSettings.from_env}
# Settings built in code with only the required values (as a test or another module might).
IN_CODE: dict[str, Callable[[], Any]] = {
    "gce": lambda: GceSettings(project="p", zone="z", instance_template="t"),
    "fly": lambda: FlySettings(api_token="t", app="a", image="i"),
    "daily": lambda: DailySettings(api_key="k"),
    "modal": lambda: ModalSettings(token_id="ak-1", token_secret="as-1", app="a", image_id="im-1"),
}
MODES = ["gce", "fly", "modal", "daily"]
# Each mode's table; Daily's serves every cloud mode that offers `daily`.
HEADINGS = {"daily": "**Daily** (every cloud mode)"}


def _quoted(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def documented(mode: str) -> list[tuple[str, str | None, str | None]]:
    """(variable, default, example) of each variable in the `MACHINES=<mode>` table."""
    text = CONFIGURATION.read_text()
    start = text.index(HEADINGS.get(mode, f"**`MACHINES={mode}`**"))
    rows: list[tuple[str, str | None, str | None]] = []
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = _quoted(cells[0])
        # `FLY_CREATE_RATE` / `_BURST` / `_MAX_WAIT`: a suffix shares the first name's prefix
        names = [n if not n.startswith("_") else names[0].rsplit("_", 1)[0] + n for n in names]
        # "unset (one project: `GCE_PROJECT`)": the quoted name is the fallback, not a value to set
        defaults = [] if cells[1].startswith("unset") else _quoted(cells[1])
        examples = _quoted(cells[2])
        for i, name in enumerate(names):
            default = defaults[i] if len(defaults) == len(names) else None
            example = examples[i] if len(examples) == len(names) else None
            rows.append((name, default, example))
    return rows


@pytest.mark.parametrize("mode", MODES)
def test_the_readme_table_is_found(mode: str) -> None:
    rows = documented(mode)
    assert len([r for r in rows if r[1] is not None]) >= 8  # the parser reads the table it is meant to


@pytest.mark.parametrize("mode", MODES)
def test_unset_variables_behave_as_their_documented_defaults(mode: str) -> None:
    required = REQUIRED[mode]
    defaults = {name: default for name, default, _ in documented(mode) if default is not None and name not in required}
    unset = FROM_ENV[mode](required)
    assert unset == FROM_ENV[mode]({**required, **defaults})
    assert IN_CODE[mode]() == unset


@pytest.mark.parametrize("mode", MODES)
def test_every_documented_example_is_read(mode: str) -> None:
    """All examples at once (some only make sense together: `GCE_AUTH=none` needs a fake's URL);
    leaving any one out changes the settings, or makes them invalid."""
    required = REQUIRED[mode]
    examples = {name: example for name, default, example in documented(mode)
                if example is not None and default is not None and name not in required}
    assert examples
    together = FROM_ENV[mode]({**required, **examples})

    def without(name: str) -> Any:
        try:
            return FROM_ENV[mode]({**required, **{k: v for k, v in examples.items() if k != name}})
        except SettingsError as error:
            return error

    assert [name for name in examples if without(name) == together] == []

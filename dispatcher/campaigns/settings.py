"""A deployment's campaign settings: the numbers no campaign calls (`CALLS_DO_NOT_CALL`, and
`CALLS_DO_NOT_CALL_FILE`, one number a line), how long a replica's hold on a row lasts unrenewed
(`CAMPAIGN_LEASE_SECONDS`), and what one key may keep (`CAMPAIGN_MAX_LIVE_PER_KEY`,
`CAMPAIGN_MAX_ROWS_PER_KEY`). A number that is not E.164 stops the start with where it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dispatcher.phone.transfer_target import E164
from dispatcher.store.campaign_book import DEFAULT_LIMITS
from voicefleet_settings.read import SettingsError, setting_float, setting_int, setting_list, setting_text


@dataclass(frozen=True)
class CampaignSettings:
    do_not_call: frozenset[str] = frozenset()
    lease_seconds: float = 30.0
    max_live_per_key: int = DEFAULT_LIMITS.live
    max_rows_per_key: int = DEFAULT_LIMITS.key_rows

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CampaignSettings:
        numbers = set()
        for number in setting_list(env, "CALLS_DO_NOT_CALL"):
            if not E164.fullmatch(number):
                raise SettingsError(f"CALLS_DO_NOT_CALL: {number[:40]!r} is not an E.164 number (+14155550100)")
            numbers.add(number)
        if path := setting_text(env, "CALLS_DO_NOT_CALL_FILE"):
            numbers |= _numbers_in(Path(path))
        return cls(frozenset(numbers), setting_float(env, "CAMPAIGN_LEASE_SECONDS"),
                   setting_int(env, "CAMPAIGN_MAX_LIVE_PER_KEY"), setting_int(env, "CAMPAIGN_MAX_ROWS_PER_KEY"))


def _numbers_in(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"CALLS_DO_NOT_CALL_FILE: {path} cannot be read ({exc.__class__.__name__}): give a "
                            "UTF-8 file of numbers, one a line") from None
    numbers = set()
    for n, line in enumerate(lines, 1):
        number = line.split("#", 1)[0].strip()
        if not number:
            continue
        if not E164.fullmatch(number):
            raise SettingsError(f"CALLS_DO_NOT_CALL_FILE: line {n} of {path} is not an E.164 number "
                                f"({number[:40]!r}): write one number a line, +14155550100")
        numbers.add(number)
    return numbers

"""What a session keeps and for how long, per key name and per release: the one reading of the
recording rules, shared by the dispatcher (which applies them) and the stacks (which turn the
retention into the bucket's own lifecycle rules).

`RECORDING_RULES` is a `;`-separated list of rules, each a selector and its fields:

    key:acme audio=consent transcript=on days=30; release:v7 audio=off

A field a rule leaves out is not changed by it. Where rules and the deployment's defaults
(`RECORDING`, `RECORDING_TRANSCRIPT`, `RECORDING_RETENTION_DAYS`) disagree, the most careful wins,
field by field: `off` over `consent` over `on`, the fewer days over the more (0 days: kept until
erased, the most of all). A person reading any one rule knows the session keeps no more than it says.

Retention is carried in the objects' keys, `<prefix>/retain-<days>d/...` (or `retain-forever`), so
one lifecycle rule per distinct day count keeps it on every cloud: GCS's lifecycle matches only
prefixes, and S3's and Azure's match prefixes too.

A rule's policies and days are what `RECORDING` and `RECORDING_RETENTION_DAYS` accept: their choices
and bounds are read from those settings' catalogue entries, never written here again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from voicefleet_settings.model import ENUM, INTEGER
from voicefleet_settings.read import entry

POLICIES = entry("RECORDING", ENUM).choices  # most careful first, as the catalogue lists them
_DAYS = entry("RECORDING_RETENTION_DAYS", INTEGER)
# Both bounds, or the unpacking fails at import: a rule is never less bounded than the setting.
MIN_DAYS, MAX_DAYS = (int(bound) for bound in (_DAYS.minimum, _DAYS.maximum) if bound is not None)
FIELDS = ("audio", "transcript", "days")
SELECTORS = ("key", "release")
# The form of a key name (DISPATCHER_API_KEYS) and of a release name alike: a rule naming what could
# never be one (`release:V7`) would silently match nothing, and so keep more than it says.
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class RulesError(ValueError):
    """A rule that does not parse; the message names the rule and the way to write it."""


@dataclass(frozen=True)
class Keeping:
    """What one session keeps: its audio and transcript policies and its retention in days (0: until erased)."""

    audio: str = "off"
    transcript: str = "off"
    days: int = 0

    def careful(self, other: Keeping) -> Keeping:
        return Keeping(audio=_careful(self.audio, other.audio), transcript=_careful(self.transcript, other.transcript),
                       days=_fewer_days(self.days, other.days))


@dataclass(frozen=True)
class Rule:
    selector: str  # "key" or "release"
    name: str
    audio: str | None = None
    transcript: str | None = None
    days: int | None = None

    def applied_to(self, keeping: Keeping) -> Keeping:
        return keeping.careful(Keeping(audio=self.audio or "on", transcript=self.transcript or "on",
                                       days=self.days if self.days is not None else 0))


@dataclass(frozen=True)
class RecordingRules:
    default: Keeping = Keeping()
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def for_session(self, key_name: str | None, release: str | None) -> Keeping:
        keeping = self.default
        for rule in self.rules:
            if (rule.selector == "key" and rule.name == key_name) or (
                    rule.selector == "release" and rule.name == release):
                keeping = rule.applied_to(keeping)
        return keeping

    def for_any_release(self, key_name: str | None) -> Keeping:
        """The most careful keeping over every release this key's session could be given: for what
        starts before its release is chosen (a carrier's recording of a phone call, a Daily room's
        cloud recording), where a release rule that keeps less must hold whichever release it gets."""
        keeping = self.for_session(key_name, None)
        for name in self.named("release"):
            keeping = keeping.careful(self.for_session(key_name, name))
        return keeping

    def named(self, selector: str) -> set[str]:
        """The key names (or releases) the rules name: checked against those that exist."""
        return {rule.name for rule in self.rules if rule.selector == selector}

    def retention_days(self) -> list[int]:
        """Every day count a session can be kept for (0: until erased), one lifecycle rule each."""
        found = {self.default.days}
        for rule in self.rules:
            found.add(_fewer_days(self.default.days, rule.days if rule.days is not None else 0))
        return sorted(found)


def retention_folder(days: int) -> str:
    """The key segment that carries a retention: `retain-30d`, or `retain-forever` for 0."""
    return f"retain-{days}d" if days else "retain-forever"


def parse_rules(text: str, default: Keeping) -> RecordingRules:
    rules: list[Rule] = []
    seen: set[tuple[str, str]] = set()
    for raw in text.split(";"):
        words = raw.split()
        if not words:
            continue
        rule = _rule(words, raw.strip())
        if (rule.selector, rule.name) in seen:
            raise RulesError(f"RECORDING_RULES names {rule.selector}:{rule.name} twice: put its fields in one rule")
        seen.add((rule.selector, rule.name))
        rules.append(rule)
    return RecordingRules(default=default, rules=tuple(rules))


def _policy(name: str, value: str) -> str:
    """A rule's `audio=` or `transcript=`: one of RECORDING's choices, any case."""
    value = value.strip().lower()
    if value not in POLICIES:
        raise RulesError(f"{name}={value!r}: use one of {', '.join(POLICIES)}")
    return value


def _days(name: str, value: str) -> int:
    """A rule's `days=`: within RECORDING_RETENTION_DAYS's bounds."""
    try:
        days = int(value.strip())
    except ValueError:
        raise RulesError(f"{name}={value!r}: a whole number of days (0: kept until erased)") from None
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise RulesError(f"{name}={days}: from {MIN_DAYS} (kept until erased) to {MAX_DAYS} days")
    return days


def _rule(words: list[str], raw: str) -> Rule:
    selector, _, name = words[0].partition(":")
    if selector not in SELECTORS or not _NAME.match(name):
        raise RulesError(f"RECORDING_RULES rule {raw!r} starts with {words[0]!r}: start a rule with key:NAME or "
                         "release:NAME, a name of 1-32 lowercase letters, digits or '-' as key and release names "
                         "are, e.g. 'key:acme audio=consent days=30'")
    values: dict[str, str] = {}
    for word in words[1:]:
        field_name, equals, value = word.partition("=")
        if not equals or field_name not in FIELDS:
            raise RulesError(f"RECORDING_RULES rule {raw!r}: {word!r} is not one of "
                             f"{', '.join(f + '=' for f in FIELDS)}")
        values[field_name] = value
    if not values:
        raise RulesError(f"RECORDING_RULES rule {raw!r} sets nothing: add audio=, transcript= or days=")
    where = f"RECORDING_RULES {selector}:{name}"
    return Rule(selector=selector, name=name,
                audio=_policy(f"{where} audio", values["audio"]) if "audio" in values else None,
                transcript=_policy(f"{where} transcript", values["transcript"]) if "transcript" in values
                else None,
                days=_days(f"{where} days", values["days"]) if "days" in values else None)


def _careful(a: str, b: str) -> str:
    return a if POLICIES.index(a) <= POLICIES.index(b) else b


def _fewer_days(a: int, b: int) -> int:
    if not a or not b:
        return a or b
    return min(a, b)

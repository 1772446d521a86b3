"""The recording rules: one syntax for the dispatcher and the stacks, the most careful value winning."""

from __future__ import annotations

import pytest

from dispatcher.artifacts.rules import Keeping, RulesError, parse_rules, retention_folder

DEFAULT = Keeping(audio="on", transcript="on", days=90)


def test_a_key_rule_and_a_release_rule_each_lower_what_a_session_keeps() -> None:
    rules = parse_rules("key:acme audio=consent days=30; release:v7 transcript=off days=7", DEFAULT)
    assert rules.for_session("acme", "v1") == Keeping(audio="consent", transcript="on", days=30)
    assert rules.for_session("other", "v7") == Keeping(audio="on", transcript="off", days=7)
    assert rules.for_session("acme", "v7") == Keeping(audio="consent", transcript="off", days=7)
    assert rules.for_session(None, None) == DEFAULT
    assert rules.retention_days() == [7, 30, 90]
    assert rules.named("key") == {"acme"} and rules.named("release") == {"v7"}


def test_a_rule_never_raises_what_the_deployment_keeps() -> None:
    rules = parse_rules("key:acme audio=on days=365", Keeping(audio="consent", transcript="off", days=30))
    assert rules.for_session("acme", None) == Keeping(audio="consent", transcript="off", days=30)


def test_kept_until_erased_is_the_most_and_gives_way_to_any_count() -> None:
    rules = parse_rules("release:v2 days=14", Keeping(audio="on", transcript="on", days=0))
    assert rules.for_session(None, "v2").days == 14 and rules.for_session(None, "v1").days == 0
    assert rules.retention_days() == [0, 14]
    assert [retention_folder(d) for d in rules.retention_days()] == ["retain-forever", "retain-14d"]


@pytest.mark.parametrize(("text", "names"), [
    ("acme audio=on", "key:NAME"),
    ("key:acme audio=maybe", "off, consent, on"),
    ("key:acme audo=on", "audio="),
    ("key:acme days=-1", "from 0"),
    ("key:acme days=week", "whole number"),
    ("key:acme", "sets nothing"),
    ("key:acme days=1; key:acme audio=off", "twice"),
    # Names no key or release can have: the rule would match nothing and keep more than it says.
    ("release:V7 audio=off", "lowercase letters"),
    ("release:v7.1 audio=off", "lowercase letters"),
    ("key:Acme_EU audio=off", "lowercase letters"),
])
def test_a_rule_that_does_not_parse_is_named_with_the_way_to_write_it(text: str, names: str) -> None:
    with pytest.raises(RulesError, match=names):
        parse_rules(text, DEFAULT)

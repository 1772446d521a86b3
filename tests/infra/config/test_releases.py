"""The releases list every cloud's stack writes (stacks/config/releases.py): named, rolled, trimmed, refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stacks.config.reader import SettingsError
from stacks.config.releases import ReleaseSettings, StackRelease, catalogue, derived_name, previous, roll

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/voicefleet-aws-dev-bot:{}"


def test_a_name_comes_from_the_image_digest_or_from_what_is_launched() -> None:
    assert derived_name({"daily": "registry.fly.io/bot@sha256:9f2c1a7b3d" + "0" * 54}) == "r-9f2c1a7b3d"
    one = derived_name({"daily": ARN.format(4)})
    assert one != derived_name({"daily": ARN.format(5)}) and one == derived_name({"daily": ARN.format(4)})
    both = {"daily": ARN.format(4), "webrtc": ARN.format(4).replace("bot:", "bot-webrtc:")}
    assert derived_name(both) == derived_name(dict(reversed(both.items())))  # order of transports is no change
    assert len(derived_name(both)) == 12


def test_a_new_release_is_added_last_and_the_oldest_dropped() -> None:
    listed: tuple[StackRelease, ...] = ()
    for revision in range(1, 5):
        images = {"daily": ARN.format(revision)}
        listed = roll(listed, name=derived_name(images), images=images, kept=3, now=NOW)
    assert [release.images["daily"] for release in listed] == [ARN.format(n) for n in (2, 3, 4)]


def test_the_same_release_again_changes_nothing() -> None:
    images = {"daily": ARN.format(1)}
    first = roll((), name="r-1", images=images, kept=3, now=NOW)
    assert roll(first, name="r-1", images=images, kept=3, now=datetime(2027, 1, 1, tzinfo=UTC)) == first
    text = catalogue(first, ReleaseSettings(canary_percent=5))
    assert json.loads(text) == {"releases": [{"name": "r-1", "images": {"daily": ARN.format(1)},
                                              "created": "2026-11-25T10:00:00Z"}], "canaryPercent": 5}
    assert previous(text) == first and previous(json.loads(text)) == first


def test_fewer_kept_never_drops_the_current_release() -> None:
    listed = tuple(StackRelease(f"r-{n}", {"daily": ARN.format(n)}, "2026-11-25T10:00:00Z") for n in range(3))
    # The oldest listed release is the current one again (a bot changed back): the others go first.
    assert [r.name for r in roll(listed, name="r-0", images={"daily": ARN.format(0)}, kept=1)] == ["r-0"]


def test_a_named_release_never_changes_what_it_launches() -> None:
    listed = roll((), name="spring", images={"daily": ARN.format(1)}, kept=3, now=NOW)
    with pytest.raises(SettingsError, match="voicefleet:release = 'spring' is already a release"):
        roll(listed, name="spring", images={"daily": ARN.format(2)}, kept=3, now=NOW)


def test_an_unreadable_record_is_refused_not_forgotten() -> None:
    assert previous(None) == () and previous("") == ()
    with pytest.raises(SettingsError, match="`releases` output is not a releases list"):
        previous('{"releases": [{"name": "a"}]}')

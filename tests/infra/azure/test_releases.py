"""Azure releases: each kept release is its images by digest in RELEASES, which the launch policy admits.

Each `up` is the program run under the mocks with the previous run's outputs as the stack's own
last outputs (stacks/tools/mocks.py `previous`): first `up`, the same `up` again, a new build and
the oldest dropped.
"""

from __future__ import annotations

import json
from typing import Any

from stacks.azure.launch_policy import GROUPS
from stacks.config.releases import derived_name
from stacks.tools.mocks import Deployed, Run, unwrap
from tests.infra.azure.test_launch_policy import launched, rule
from tests.infra.azure.test_stack import env
from tests.infra.conftest import StackRunner
from tests.infra.helpers import component_outputs
from tests.support.azure_policy import denies

MOCK_NOW = Deployed().now  # the clock of an offline `up` (stacks/tools/mocks.py)


def outputs(run: Run) -> dict[str, Any]:
    return dict(unwrap(component_outputs(run, "azure")))


def releases(run: Run) -> dict[str, Any]:
    return dict(json.loads(env(run)["RELEASES"]["value"]))


def image(run: Run, digest: str) -> str:
    return str(env(run)["ACI_BOT_IMAGE"]["value"]).rsplit("@", 1)[0] + "@sha256:" + digest


def remembered(run: Run, *images: str) -> dict[str, Any]:
    """The stack's last outputs as earlier `up`s of the bots `images` would have left them, oldest first."""
    entries = [{"name": derived_name({"*": ref}), "images": {"*": ref}, "created": f"2026-01-0{i + 1}T00:00:00Z"}
               for i, ref in enumerate(images)]
    return {"releases": json.dumps({"releases": entries, "canaryPercent": 10})}


def test_a_first_up_offers_one_release_the_bot_image_by_digest(azure: Run) -> None:
    listed = releases(azure)
    (release,) = listed["releases"]
    assert release["images"] == {"*": env(azure)["ACI_BOT_IMAGE"]["value"]}
    assert release["created"] == MOCK_NOW.strftime("%Y-%m-%dT%H:%M:%SZ") and listed["canaryPercent"] == 10
    assert json.loads(outputs(azure)["releases"]) == listed


def test_an_up_with_no_change_registers_exactly_what_the_last_did(stack: StackRunner, azure: Run) -> None:
    """After a first `up`, and after one that added a release beside an older one."""
    for first in (azure, stack("azure", previous=remembered(azure, image(azure, "0a" * 32)))):
        again = stack("azure", previous=outputs(first))
        assert {r.urn: unwrap(r.inputs) for r in again.registrations} == {r.urn: unwrap(r.inputs)
                                                                            for r in first.registrations}
    assert len(releases(again)["releases"]) == 2


def test_a_new_build_joins_at_the_canary_share_and_the_oldest_past_releases_kept_goes(stack: StackRunner,
                                                                                     azure: Run) -> None:
    older, old = image(azure, "0b" * 32), image(azure, "0a" * 32)
    run = stack("azure", releasesKept="2", canaryPercent="5", previous=remembered(azure, older, old))
    listed = releases(run)
    assert listed["canaryPercent"] == 5
    assert [r["images"]["*"] for r in listed["releases"]] == [old, env(run)["ACI_BOT_IMAGE"]["value"]]
    assert listed["releases"][0]["created"] == "2026-01-02T00:00:00Z"  # a kept release never changes


def test_the_launch_policy_admits_a_kept_release_s_image(stack: StackRunner, azure: Run) -> None:
    """Azure Policy refuses any image its rule does not match (`Deny`): an older release, pinned by a
    session or rolled back to, is listed, and its image admitted."""
    old = image(azure, "0a" * 32)
    run = stack("azure", previous=remembered(azure, old))
    (first, _) = releases(run)["releases"]
    assert not denies(rule(run), GROUPS, launched(run, first["images"]["*"]))
    foreign = first["images"]["*"].replace(".azurecr.io/", ".azurecr.io/other/")
    assert denies(rule(run), GROUPS, launched(run, foreign))


def test_a_dropped_release_s_image_is_admitted_until_the_next_up_and_never_an_unlisted_one(stack: StackRunner,
                                                                                           azure: Run) -> None:
    """The `up` that drops a release replaces a dispatcher that may still launch it: the policy,
    assigned before the new dispatcher starts, admits what either list names; the next `up` admits
    only what is listed. A digest neither list names is refused all along."""
    older, old = image(azure, "0b" * 32), image(azure, "0a" * 32)
    dropping = stack("azure", releasesKept="2", previous=remembered(azure, older, old))
    assert older not in [r["images"]["*"] for r in releases(dropping)["releases"]]
    assert not denies(rule(dropping), GROUPS, launched(dropping, older))
    after = stack("azure", releasesKept="2", previous=outputs(dropping))
    assert releases(after) == releases(dropping)
    assert denies(rule(after), GROUPS, launched(after, older))
    assert not denies(rule(after), GROUPS, launched(after, old))
    unlisted = image(azure, "0c" * 32)
    assert all(denies(rule(run), GROUPS, launched(run, unlisted)) for run in (dropping, after))


def test_with_a_relay_a_release_names_its_smallwebrtc_image_for_webrtc_sessions(full: Run) -> None:
    (release,) = releases(full)["releases"]
    assert release["images"] == {"*": env(full)["ACI_BOT_IMAGE"]["value"],
                                 "webrtc": env(full)["ACI_BOT_IMAGE_WEBRTC"]["value"]}
    assert release["name"] == derived_name(release["images"])

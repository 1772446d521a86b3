"""GCP releases: a template (gce) or a job (cloudrun) per kept release, RELEASES, what the registry keeps.

Each `up` is the program run under the mocks with the previous run's outputs as the stack's own
last outputs (stacks/tools/mocks.py `previous`): first `up`, the same `up` again, a new build, the
oldest dropped, and a dropped release's definition kept until its last session must have ended.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.config.releases import ReleaseSettings, derived_name
from stacks.gcp.bot_job import MAX_JOB_NAME, job_name
from stacks.gcp.registry import cleanup_policies
from stacks.gcp.stack import ROLLOUT_MARGIN_SECONDS
from stacks.shared.contract import BOT_JOBS_OUTPUT
from stacks.shared.release_builds import BUILDS_OUTPUT, STAMP, Builds, advance, parse, unexpired
from stacks.tools.mocks import Deployed, Run, run_program, unwrap
from stacks.tools.preflight import destroy, release_definitions
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner, config_for
from tests.infra.helpers import component_outputs
from tests.infra.test_turn_server import dispatcher_env

MOCK_NOW = Deployed().now  # the clock of an offline `up` (stacks/tools/mocks.py)
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
JOB = "gcp:cloudrunv2/job:Job"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
OLD_BOT = "europe-west4-docker.pkg.dev/vf-test/voicefleet-gcp-test/bot@sha256:" + "0a" * 32
OLDER_BOT = "europe-west4-docker.pkg.dev/vf-test/voicefleet-gcp-test/bot@sha256:" + "0b" * 32
LONG_AGO = (MOCK_NOW - timedelta(days=30)).strftime(STAMP)


def outputs(run: Run) -> dict[str, Any]:
    """What the stack exported: what its next `up` reads back as its own last outputs."""
    return dict(unwrap(component_outputs(run, "gcp")))


def releases(run: Run) -> dict[str, Any]:
    found = dispatcher_env(run, "gcp")["RELEASES"]
    assert found is not None
    return dict(json.loads(found))


def build(images: dict[str, str], created: str = LONG_AGO, retired: str | None = None) -> dict[str, Any]:
    return {"name": derived_name(images), "created": created, "images": images,
            **({"retired": retired} if retired is not None else {})}


def remembered(*listed: dict[str, Any], retiring: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The stack's last outputs as an earlier `up` of other builds would have left them."""
    return {BUILDS_OUTPUT: {"listed": list(listed), "retiring": list(retiring), "current": listed[-1]["name"]}}


def templates(run: Run) -> dict[str, dict[str, Any]]:
    """Release -> its template's inputs, and the name the provider gave it."""
    return {unwrap(t.inputs)["labels"]["release"]: {**unwrap(t.inputs), "name": t.outputs["name"]}
            for t in run.of_type(TEMPLATE)}


def test_a_first_up_offers_one_release_launched_from_its_own_template(gcp: Run) -> None:
    listed = releases(gcp)
    (release,) = listed["releases"]
    assert listed["canaryPercent"] == 10  # the default
    env = dispatcher_env(gcp, "gcp")
    assert release["images"] == {"*": env["GCE_INSTANCE_TEMPLATE"]}
    assert release["created"] == MOCK_NOW.strftime(STAMP)
    (name,) = templates(gcp)
    template = templates(gcp)[name]
    assert name == release["name"] == derived_name({"bot": template["metadata"]["bot-image"]})
    assert outputs(gcp)["botInstanceTemplate"] == env["GCE_INSTANCE_TEMPLATE"]
    assert json.loads(outputs(gcp)["releases"]) == listed


def registered(run: Run) -> dict[str, Any]:
    return {r.urn: unwrap(r.inputs) for r in run.registrations}


def keep_rule(run: Run) -> list[str]:
    """The digests the registry's keep-releases rule names (none: no such rule)."""
    policies = unwrap(run.one(REPOSITORY).inputs)["cleanupPolicies"]
    return [d for p in policies if p["id"] == "keep-releases" for d in p["condition"]["versionNamePrefixes"]]


def test_a_second_up_with_no_change_registers_exactly_what_the_first_did(stack: StackRunner, gcp: Run) -> None:
    """But for the registry's keep rule, which learns the first build's digest once it is pushed."""
    again = stack("gcp", previous=outputs(gcp))
    assert releases(again) == releases(gcp)
    changed = {urn for urn, inputs in registered(again).items() if registered(gcp).get(urn) != inputs}
    assert changed == {again.one(REPOSITORY).urn} and registered(again).keys() == registered(gcp).keys()
    assert outputs(again)[BUILDS_OUTPUT] == outputs(gcp)[BUILDS_OUTPUT]
    settled = stack("gcp", previous=outputs(again))
    assert registered(settled) == registered(again)  # nothing to create, change or delete


def test_the_registry_keeps_the_deployed_build_by_digest_from_the_next_up_on(stack: StackRunner, gcp: Run) -> None:
    """The build an `up` deployed is a kept release like the others: a tag does not hold it (a later
    push, a preview's with buildOnPreview or a failed `up`'s, takes `latest` from it, and it is then an
    untagged version that `drop-untagged` deletes a day later)."""
    deployed = dispatcher_env(gcp, "gcp")
    template = templates(gcp)[releases(gcp)["releases"][0]["name"]]
    digest = template["metadata"]["bot-image"].rsplit("@", 1)[1]
    assert keep_rule(gcp) == [] and deployed["GCE_INSTANCE_TEMPLATE"]
    assert digest in keep_rule(stack("gcp", previous=outputs(gcp)))


def test_after_a_new_release_the_next_up_only_adds_the_new_one_to_the_registry_keep_rule(stack: StackRunner) -> None:
    """The registry learns a digest once it is pushed, so the `up` after the one that built a release
    lists it in the keep rule (until then it is the newest version); the `up` after that changes nothing."""
    added = stack("gcp", previous=remembered(build({"bot": OLD_BOT})))
    after = stack("gcp", previous=outputs(added))
    changed = {urn for urn, inputs in registered(after).items() if registered(added).get(urn) != inputs}
    assert changed == {after.one(REPOSITORY).urn} and registered(after).keys() == registered(added).keys()
    assert releases(after) == releases(added) and len(releases(after)["releases"]) == 2
    settled = stack("gcp", previous=outputs(after))
    assert registered(settled) == registered(after)


def test_a_new_build_is_added_as_a_release_at_the_canary_share_beside_the_old_one(stack: StackRunner) -> None:
    old = build({"bot": OLD_BOT})
    run = stack("gcp", canaryPercent="25", previous=remembered(old))
    listed = releases(run)
    assert listed["canaryPercent"] == 25
    assert [r["name"] for r in listed["releases"]][0] == old["name"]
    assert len(listed["releases"]) == 2 and listed["releases"][0]["created"] == LONG_AGO
    kept = templates(run)
    assert set(kept) == {r["name"] for r in listed["releases"]}
    assert kept[old["name"]]["metadata"]["bot-image"] == OLD_BOT  # the old build runs as it was
    for release in listed["releases"]:  # each release launches from its own template
        (reference,) = release["images"].values()
        assert reference.endswith("/" + kept[release["name"]]["name"])
    assert dispatcher_env(run, "gcp")["GCE_INSTANCE_TEMPLATE"] == listed["releases"][-1]["images"]["*"]


def test_the_oldest_release_past_releases_kept_is_dropped_and_retires(stack: StackRunner) -> None:
    older, old = build({"bot": OLDER_BOT}), build({"bot": OLD_BOT})
    run = stack("gcp", releasesKept="2", previous=remembered(older, old))
    listed = [r["name"] for r in releases(run)["releases"]]
    assert older["name"] not in listed and listed[0] == old["name"] and len(listed) == 2
    # Not offered any more, but a session started on it may still run: its template and image stay.
    assert older["name"] in templates(run)
    (retiring,) = outputs(run)[BUILDS_OUTPUT]["retiring"]
    assert retiring["name"] == older["name"] and retiring["retired"] == MOCK_NOW.strftime(STAMP)
    keep = next(p for p in unwrap(run.one(REPOSITORY).inputs)["cleanupPolicies"] if p["id"] == "keep-releases")
    assert OLDER_BOT.rsplit("@", 1)[1] in keep["condition"]["versionNamePrefixes"]


@pytest.mark.parametrize("runtime", ["gce", "cloudrun"])
def test_a_preview_of_a_new_build_shows_the_kept_releases_definitions_kept(runtime: str) -> None:
    """At a preview the new build's digest is unknown: the remembered releases' templates or jobs are
    declared all the same (left out, the preview would show each deleted), a retiring one past its life not."""
    older, old = build({"bot": OLDER_BOT}), build({"bot": OLD_BOT})
    gone = build({"bot": OLDER_BOT.replace("0b" * 32, "0c" * 32)}, retired=LONG_AGO)
    cloud_run = {"botRuntime": "cloudrun", **CHANNEL["gcp"]} if runtime == "cloudrun" else {}
    secrets = {**SECRETS, **CHANNEL_SECRETS} if runtime == "cloudrun" else SECRETS
    run = run_program(config_for("gcp", cloud_run, secrets), list(secrets), stack="gcp-test", preview=True,
                      deployed=Deployed(outputs=remembered(older, old, retiring=(gone,))))
    typ, images = (TEMPLATE, "metadata") if runtime == "gce" else (JOB, "template")
    declared = {unwrap(r.inputs)["labels"]["release"]: unwrap(r.inputs) for r in run.of_type(typ)}
    assert set(declared) == {older["name"], old["name"]}
    for release in (older, old):
        body = declared[release["name"]]
        image = (body["metadata"]["bot-image"] if images == "metadata"
                 else body["template"]["template"]["containers"][0]["image"])
        assert image == release["images"]["bot"]


def test_a_retired_release_goes_once_its_longest_session_is_over(stack: StackRunner) -> None:
    """A bot VM lives at most maxSessionSeconds and its boot grace (the template's maxRunDuration)."""
    old = build({"bot": OLD_BOT})
    for retired, stays in ((MOCK_NOW - timedelta(seconds=60)), True), ((MOCK_NOW - timedelta(days=1)), False):
        run = stack("gcp", previous=remembered(
            old, retiring=(build({"bot": OLDER_BOT}, retired=retired.strftime(STAMP)),)))
        assert (derived_name({"bot": OLDER_BOT}) in templates(run)) is stays
        assert derived_name({"bot": OLDER_BOT}) not in [r["name"] for r in releases(run)["releases"]]
        keep = [p for p in unwrap(run.one(REPOSITORY).inputs)["cleanupPolicies"] if p["id"] == "keep-releases"]
        assert (OLDER_BOT.rsplit("@", 1)[1] in str(keep)) is stays


def test_a_retiring_release_stays_while_a_reserve_bot_of_it_may_still_wait_and_serve(stack: StackRunner) -> None:
    """With the channel the dispatcher keeps idle bots, each allowed RESERVE_MAX_IDLE_SECONDS to be
    claimed and then a whole session (dispatcher/machines/gce/reserve.py `max_run_seconds`): its
    release's template and image stay that much longer than a cold session's life."""
    session, grace, idle = 1800, 300 + ROLLOUT_MARGIN_SECONDS, 900  # maxSessionSeconds, GCE_BOOT_GRACE_SECONDS
    # (plus the dropped release's launches until the new dispatcher serves), reserveMaxIdleSeconds
    reserve = {"secrets": {**SECRETS, **CHANNEL_SECRETS}, **CHANNEL["gcp"], "maxSessionSeconds": str(session),
               "reserveMaxIdleSeconds": str(idle)}
    cold = {"maxSessionSeconds": str(session)}
    for overrides, ago, stays in ((cold, session + grace - 60, True), (cold, session + grace + 60, False),
                                  (reserve, session + grace + 60, True), (reserve, idle + session + grace - 60, True),
                                  (reserve, idle + session + grace + 60, False)):
        retired = (MOCK_NOW - timedelta(seconds=ago)).strftime(STAMP)
        run = stack("gcp", previous=remembered(build({"bot": OLD_BOT}),
                                               retiring=(build({"bot": OLDER_BOT}, retired=retired),)), **overrides)
        assert (derived_name({"bot": OLDER_BOT}) in templates(run)) is stays, (overrides, ago)
        assert (OLDER_BOT.rsplit("@", 1)[1] in keep_rule(run)) is stays, (overrides, ago)
    # Cloud Run (always with the channel): an idle execution's timeout is the same sum with the job's grace.
    job_grace = 120 + ROLLOUT_MARGIN_SECONDS  # BotJobArgs.grace_seconds, and the rollout's margin
    for ago, stays in ((session + job_grace + 60, True), (idle + session + job_grace + 60, False)):
        retired = (MOCK_NOW - timedelta(seconds=ago)).strftime(STAMP)
        run = cloudrun(stack, previous=remembered(build({"bot": OLD_BOT}),
                                                  retiring=(build({"bot": OLDER_BOT}, retired=retired),)),
                       maxSessionSeconds=str(session), reserveMaxIdleSeconds=str(idle))
        jobs = {unwrap(j.inputs)["labels"]["release"] for j in run.of_type(JOB)}
        assert (derived_name({"bot": OLDER_BOT}) in jobs) is stays, ago


def test_a_release_dropped_as_the_session_cap_falls_stays_for_the_life_its_bots_were_launched_with(
        stack: StackRunner) -> None:
    """Its bots were launched under the last `up`'s longer cap: lowering `maxSessionSeconds` in the
    `up` that drops it must not delete a template or job a bot of it may still run from."""
    grace = 300 + ROLLOUT_MARGIN_SECONDS  # GCE_BOOT_GRACE_SECONDS and the rollout's margin
    older, old = build({"bot": OLDER_BOT}), build({"bot": OLD_BOT})
    before = remembered(older, old)
    before[BUILDS_OUTPUT]["longestBotSeconds"] = 7200 + grace  # the last `up`: maxSessionSeconds 7200
    dropping = stack("gcp", releasesKept="2", maxSessionSeconds="600", previous=before)
    (retiring,) = outputs(dropping)[BUILDS_OUTPUT]["retiring"]
    assert retiring["name"] == older["name"] and retiring["livesSeconds"] == 7200 + grace
    assert outputs(dropping)[BUILDS_OUTPUT]["longestBotSeconds"] == 600 + grace
    # Two hours on, past the new cap's life but not the old one's, a later `up` still keeps it.
    later = dict(outputs(dropping)[BUILDS_OUTPUT])
    for ago, stays in ((600 + grace + 60, True), (7200 + grace + 60, False)):
        retired = (MOCK_NOW - timedelta(seconds=ago)).strftime(STAMP)
        run = stack("gcp", maxSessionSeconds="600", previous={BUILDS_OUTPUT: {
            **later, "retiring": [{**retiring, "retired": retired}]}})
        assert (older["name"] in templates(run)) is stays, ago
        assert (OLDER_BOT.rsplit("@", 1)[1] in keep_rule(run)) is stays, ago


def test_a_release_keeps_the_longest_life_of_every_up_that_listed_it() -> None:
    """A cap lowered in an `up` that drops nothing, then a new build that drops the release: its bots
    from before the lowering may still run; so may those of a release listed again while retiring."""
    long_life, short_life = 36_000 + 1_500, 600 + 1_500
    one = advance(Builds(), {"bot": OLDER_BOT}, ReleaseSettings(), longest_bot_seconds=long_life, now=MOCK_NOW)
    lowered = advance(parse(one.as_output()), {"bot": OLDER_BOT}, ReleaseSettings(), longest_bot_seconds=short_life,
                      now=MOCK_NOW)
    dropped = advance(parse(lowered.as_output()), {"bot": OLD_BOT}, ReleaseSettings(kept=1),
                      longest_bot_seconds=short_life, now=MOCK_NOW)
    (retiring,) = dropped.retiring
    assert retiring.images == {"bot": OLDER_BOT} and retiring.lives == long_life
    later = MOCK_NOW + timedelta(seconds=short_life + 60)
    assert unexpired(dropped, short_life, later).retiring == (retiring,)
    assert unexpired(dropped, short_life, MOCK_NOW + timedelta(seconds=long_life + 60)).retiring == ()
    # Listed again while retiring, then dropped again: it keeps the life of its first listing.
    again = advance(parse(dropped.as_output()), {"bot": OLDER_BOT}, ReleaseSettings(kept=1),
                    longest_bot_seconds=short_life, now=MOCK_NOW)
    redropped = advance(parse(again.as_output()), {"bot": OLD_BOT}, ReleaseSettings(kept=1),
                        longest_bot_seconds=short_life, now=MOCK_NOW)
    assert [b.lives for b in redropped.retiring] == [long_life]


def test_the_registry_keeps_the_remembered_releases_by_digest_and_nothing_else() -> None:
    """An empty condition would keep every version (Artifact Registry's conditional KEEP matches all):
    no releases to keep, no rule."""
    assert [p["id"] for p in cleanup_policies(20, [])] == ["keep-recent", "drop-untagged", "drop-old-revision-tags"]
    kept = cleanup_policies(20, ["sha256:" + "0b" * 32])[1]
    assert kept == {"id": "keep-releases", "action": "KEEP",
                    "condition": {"version_name_prefixes": ["sha256:" + "0b" * 32]}}


def test_a_release_name_naming_another_build_is_refused() -> None:
    """Checked on the list itself: a program run that raises in an apply leaves the rest of its
    outputs running in the SDK's threads, beside the next test's run."""
    before = parse(remembered({"name": "v1", "created": LONG_AGO, "images": {"bot": OLD_BOT}})[BUILDS_OUTPUT])
    with pytest.raises(SettingsError, match="a release never changes"):
        advance(before, {"bot": OLDER_BOT}, ReleaseSettings(name="v1"), longest_bot_seconds=3600, now=MOCK_NOW)
    again = advance(before, {"bot": OLD_BOT}, ReleaseSettings(name="v1"), longest_bot_seconds=3600, now=MOCK_NOW)
    # The same build under its name: nothing changes but the life it is now known to have.
    assert [replace(b, lives=None) for b in again.listed] == list(before.listed) and again.listed[0].lives == 3600


def test_an_unreadable_memory_is_refused_not_forgotten() -> None:
    """Forgetting it would drop every kept release, and the sessions pinned to them, at once."""
    assert parse(None) == Builds()  # the first `up`, or the first after a destroy
    for broken in ({"listed": [{"name": "x"}]}, "r-1", {"listed": [build({"bot": OLD_BOT}, created="yesterday")]},
                   {"listed": [{**build({"bot": OLD_BOT}), "livesSeconds": 1.5}]},
                   {"listed": [build({"bot": OLD_BOT})], "longestBotSeconds": "an hour"},
                   {"listed": [build({"bot": OLD_BOT})], "retiring": [build({"bot": OLDER_BOT})]}):
        with pytest.raises(SettingsError, match="releaseBuilds"):
            parse(broken)


def cloudrun(stack: StackRunner, **overrides: Any) -> Run:
    return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"], **overrides)


def test_cloud_run_runs_each_release_as_a_job_of_its_own_the_dispatcher_may_run(stack: StackRunner) -> None:
    """A run's overrides never set the image (job.proto ContainerOverride: name, args, env, clear_args)."""
    old = build({"bot": OLD_BOT})
    run = cloudrun(stack, previous=remembered(old))
    listed = releases(run)["releases"]
    jobs = {unwrap(j.inputs)["labels"]["release"]: unwrap(j.inputs) for j in run.of_type(JOB)}
    assert set(jobs) == {r["name"] for r in listed} and len(jobs) == 2
    assert jobs[old["name"]]["template"]["template"]["containers"][0]["image"] == OLD_BOT
    for release in listed:
        job = jobs[release["name"]]["name"]
        assert release["images"] == {"*": f"projects/vf-test/locations/europe-west4/jobs/{job}"}
    env = dispatcher_env(run, "gcp")
    assert env["CLOUDRUN_JOB"] == jobs[listed[-1]["name"]]["name"]
    bound = {unwrap(b.inputs)["name"] for b in run.of_type("gcp:cloudrunv2/jobIamMember:JobIamMember")}
    assert bound == {job["name"] for job in jobs.values()}  # run on each release's job, on nothing else
    # The dispatcher starts only once it may run every release's job.
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    bindings = {b.urn for b in run.of_type("gcp:cloudrunv2/jobIamMember:JobIamMember")}
    assert bindings <= set(service.dependencies)


def test_a_cloud_run_up_with_no_change_registers_exactly_what_the_last_did(stack: StackRunner) -> None:
    """After the registry's keep rule learned the first build's digest (the second `up`)."""
    second = cloudrun(stack, previous=outputs(cloudrun(stack)))
    again = cloudrun(stack, previous=outputs(second))
    assert registered(again) == registered(second)


def test_job_names_fit_whatever_the_release_name() -> None:
    prefix = "voicefleet-" + "s" * 20  # the longest stack name (stacks/config/settings.py MAX_STACK_NAME)
    for release in ("r-0123456789", "a" * 32, "v" + "-1" * 15 + "x"):
        name = job_name(prefix, release)
        assert len(name) <= MAX_JOB_NAME and not name.endswith("-") and "--" not in name[len(prefix):]
    assert job_name(prefix, "a" * 32) != job_name(prefix, "a" * 31 + "b")


def test_the_preflight_passes_every_listed_definition_and_refuses_one_the_up_deletes(stack: StackRunner) -> None:
    """GCE answers an insert from a template that does not exist, as Cloud Run a run of a missing job, 404."""
    for run in (stack("gcp", previous=remembered(build({"bot": OLD_BOT}))),
                cloudrun(stack, previous=remembered(build({"bot": OLD_BOT})))):
        assert release_definitions.violations(run.registrations) == []
        kind = TEMPLATE if run.of_type(TEMPLATE) else JOB
        (old,) = [r for r in run.of_type(kind) if "r-" in r.name and OLD_BOT in json.dumps(unwrap(r.inputs))]
        without = [r for r in run.registrations if r.urn != old.urn]
        (problem,) = release_definitions.violations(without)
        assert "does not declare and so deletes" in problem and derived_name({"bot": OLD_BOT}) in problem
    protected = dataclasses.replace(old, inputs={**old.inputs, "deletionProtection": True})
    (problem,) = release_definitions.violations([*without, protected])
    assert "deletion_protection=False" in problem


def test_a_registry_count_too_small_to_hold_a_superseded_release_is_refused(stack: StackRunner) -> None:
    """The build an `up` supersedes is still listed; until the next `up` keeps it by digest only the
    newest versions hold it, three of them per build."""
    with pytest.raises(SettingsError, match="imageRetentionCount.*at least 6"):
        stack("gcp", imageRetentionCount="5")
    assert stack("gcp", imageRetentionCount="6").of_type(TEMPLATE)


def test_with_regions_a_release_added_beside_others_needs_a_name_every_region_shares() -> None:
    """A derived name hashes this region's own image digests: each region would list the same bot
    under another name, and a weight set in one region would be dropped in the others."""
    first = advance(Builds(), {"bot": OLD_BOT}, ReleaseSettings(), longest_bot_seconds=3600, now=MOCK_NOW, regions=True)
    with pytest.raises(SettingsError, match="voicefleet:release is unset in a stack with regions"):
        advance(first, {"bot": OLDER_BOT}, ReleaseSettings(), longest_bot_seconds=3600, now=MOCK_NOW, regions=True)
    named = advance(first, {"bot": OLDER_BOT}, ReleaseSettings(name="spring"), longest_bot_seconds=3600, now=MOCK_NOW,
                    regions=True)
    assert [b.name for b in named.listed] == [first.listed[0].name, "spring"]


def test_the_drain_is_told_every_job_a_session_may_still_run_in(stack: StackRunner) -> None:
    """Cloud Run's provider lists executions job by job: machinesEnvironment carries RELEASES (the
    listed releases' jobs) and `botJobs` every kept job, a retiring release's too; the preflight
    refuses a stack output that leaves a kept job out."""
    retired = (MOCK_NOW - timedelta(seconds=60)).strftime(STAMP)
    run = cloudrun(stack, previous=remembered(build({"bot": OLD_BOT}),
                                              retiring=(build({"bot": OLDER_BOT}, retired=retired),)))
    exported = outputs(run)
    assert exported["machinesEnvironment"]["RELEASES"] == dispatcher_env(run, "gcp")["RELEASES"]
    jobs = {str(unwrap(j.inputs)["name"]) for j in run.of_type(JOB)}
    assert len(jobs) == 3 and {path.rsplit("/", 1)[-1] for path in exported[BOT_JOBS_OUTPUT]} == jobs
    assert destroy.violations(run.registrations, exported) == []
    older = job_name("voicefleet-gcp-test", derived_name({"bot": OLDER_BOT}))
    left_out = {**exported, BOT_JOBS_OUTPUT: [p for p in exported[BOT_JOBS_OUTPUT] if not p.endswith(older)]}
    (problem,) = destroy.violations(run.registrations, left_out)
    assert older in problem and "executions running" in problem


def test_a_stack_wide_bot_change_replaces_every_kept_template_new_before_old(stack: StackRunner) -> None:
    """The bots' settings are every release's: a new machine type changes each kept release's template,
    which GCE cannot update, so each is replaced, the new one created before the old one is deleted
    (no delete_before_replace), and RELEASES keeps its names. The old templates go at the end of that
    `up`, once Cloud Run serves the revision naming the new ones: an old revision's instance still
    holding bots' channels may then fail a reserve refill (docs/pulumi.md, Releases, GCP)."""
    before = stack("gcp", previous=remembered(build({"bot": OLD_BOT})))
    after = stack("gcp", botMachineType="n2-standard-2", previous=outputs(before))
    old, new = templates(before), templates(after)
    assert set(new) == set(old) and len(new) == 2
    for release in new:
        assert new[release]["machineType"] == "n2-standard-2" != old[release]["machineType"]
    for template in after.of_type(TEMPLATE):
        assert not template.delete_before_replace and not template.retain_on_delete
    assert [r["name"] for r in releases(after)["releases"]] == [r["name"] for r in releases(before)["releases"]]

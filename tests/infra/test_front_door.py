"""The front door stack (`role: frontDoor`): one global name over every region, rendered and checked
offline; a first `up`, a region added, a region removed and a destroy, as the engine would see them
(the URNs it creates, keeps, updates and deletes), and what Route 53 and the Compute API would refuse."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Registration, Run, run_program, unwrap
from stacks.tools.plan import checked_plan
from stacks.tools.preflight import front_door as preflight

HEALTH_CHECK, RECORD = preflight.HEALTH_CHECK, preflight.RECORD
NEG, BACKEND = preflight.NEG, preflight.BACKEND_SERVICE
AWS_REGIONS = {"eu": {"url": "https://eu.voice.example.com", "awsRegion": "eu-west-1"},
               "us": {"url": "https://us.voice.example.com", "awsRegion": "us-east-1"}}
AP = {"ap": {"url": "https://ap.voice.example.com", "awsRegion": "ap-southeast-1"}}
GCP_REGIONS = {"eu": {"gcpRegion": "europe-west1", "service": "voicefleet-gcp-eu-dispatcher"},
               "us": {"gcpRegion": "us-central1", "service": "voicefleet-gcp-us-dispatcher"}}
BASE = {
    "aws": {"aws:region": "us-east-1", "voicefleet:frontDoorZone": "Z0123456789EXAMPLE"},
    "gcp": {"gcp:project": "vf-test", "gcp:region": "europe-west1", "voicefleet:frontDoorZone": "voice-example-com"},
}


def front_door(cloud: str, regions: Mapping[str, Any], **overrides: str) -> Run:
    """A front door stack; no secret at all (it has no dispatcher)."""
    config = {**BASE[cloud], "voicefleet:cloud": cloud, "voicefleet:role": "frontDoor",
              "voicefleet:frontDoorDomain": "voice.example.com", "voicefleet:frontDoorRegions": json.dumps(regions)}
    config |= {key if ":" in key else f"voicefleet:{key}": value for key, value in overrides.items()}
    return run_program(config, [], stack=f"global-{cloud}")


def inputs(reg: Registration) -> dict[str, Any]:
    found: dict[str, Any] = unwrap(reg.inputs)
    return found


def by_urn(run: Run) -> dict[str, Registration]:
    return {reg.urn: reg for reg in run.registrations}


def test_aws_each_region_is_a_latency_record_whose_health_check_calls_its_healthz_over_https() -> None:
    run = front_door("aws", AWS_REGIONS)
    checks = {reg.name.rsplit("-", 1)[-1]: reg for reg in run.of_type(HEALTH_CHECK)}
    records = {inputs(reg)["setIdentifier"]: reg for reg in run.of_type(RECORD)}
    assert sorted(checks) == sorted(records) == ["eu", "us"]
    for name, region in AWS_REGIONS.items():
        check = inputs(checks[name])
        assert (check["type"], check["fqdn"], check["port"], check["resourcePath"], check["enableSni"]) == (
            "HTTPS_STR_MATCH", region["url"].removeprefix("https://"), 443, "/healthz", True)
        assert check["searchString"] == '"status":"ok"'

        record = inputs(records[name])
        assert (record["name"], record["type"], record["records"], record["zoneId"]) == (
            "voice.example.com", "CNAME", [region["url"].removeprefix("https://")], "Z0123456789EXAMPLE")
        assert record["latencyRoutingPolicies"] == [{"region": region["awsRegion"]}]
        assert record["healthCheckId"] == f"{checks[name].name}-id"  # this region's own check
        assert checks[name].urn in records[name].dependencies  # a destroy deletes the record first
    assert preflight.violations(run.registrations) == []


def test_the_example_front_doors_render_offline_with_every_preflight_rule() -> None:
    for stack in ("global-aws", "global-gcp"):
        text, problems, _ = checked_plan(stack)
        assert problems == [] and text.startswith(f"# {stack}: ")


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_first_up_protects_and_retains_nothing_so_a_destroy_removes_all_of_it(cloud: str) -> None:
    run = front_door(cloud, AWS_REGIONS if cloud == "aws" else GCP_REGIONS)
    assert [reg.name for reg in run.registrations if reg.protect or reg.retain_on_delete] == []
    # The same configuration twice is the same plan: a second `up` changes nothing.
    again = front_door(cloud, AWS_REGIONS if cloud == "aws" else GCP_REGIONS)
    assert {u: inputs(r) for u, r in by_urn(run).items()} == {u: inputs(r) for u, r in by_urn(again).items()}


def test_aws_a_region_added_or_removed_is_its_own_check_and_record_and_nothing_else() -> None:
    two, three = by_urn(front_door("aws", AWS_REGIONS)), by_urn(front_door("aws", {**AWS_REGIONS, **AP}))
    added = {three[urn].type for urn in set(three) - set(two)}
    assert sorted(three[urn].name for urn in set(three) - set(two)) == ["voicefleet-global-aws-ap"] * 2
    assert added == {HEALTH_CHECK, RECORD}
    # Every resource of the two regions keeps its URN and its inputs: the `up` neither replaces nor updates them.
    assert set(two) <= set(three) and all(inputs(two[urn]) == inputs(three[urn]) for urn in two)
    # Removing it again deletes exactly those two (the record first: it depends on the check).
    assert set(three) - set(two) == {urn for urn, reg in three.items() if reg.name.endswith("-ap")}


def test_gcp_each_region_is_a_serverless_neg_behind_one_global_balancer_with_the_names_certificate() -> None:
    run = front_door("gcp", GCP_REGIONS)
    negs = {inputs(reg)["cloudRun"]["service"]: inputs(reg) for reg in run.of_type(NEG)}
    assert {service: (neg["region"], neg["networkEndpointType"]) for service, neg in negs.items()} == {
        region["service"]: (region["gcpRegion"], "SERVERLESS") for region in GCP_REGIONS.values()}
    backend = inputs(run.one(BACKEND))
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    # The mocks' ids: projects/<project>/<logical name> (stacks/tools/mocks.py).
    assert sorted(b["group"] for b in backend["backends"]) == sorted(f"projects/vf-test/{reg.name}"
                                                                     for reg in run.of_type(NEG))
    assert inputs(run.one("gcp:compute/managedSslCertificate:ManagedSslCertificate"))["managed"] == {
        "domains": ["voice.example.com"]}
    rule = inputs(run.one("gcp:compute/globalForwardingRule:GlobalForwardingRule"))
    assert (rule["portRange"], rule["loadBalancingScheme"]) == ("443", "EXTERNAL_MANAGED")
    record = inputs(run.one("gcp:dns/recordSet:RecordSet"))
    address = run.one("gcp:compute/globalAddress:GlobalAddress").outputs["address"]
    assert (record["name"], record["type"], record["rrdatas"], record["managedZone"]) == (
        "voice.example.com.", "A", [address], "voice-example-com")
    assert preflight.violations(run.registrations) == []


def test_gcp_a_region_added_is_one_neg_and_the_backend_services_list() -> None:
    more = {**GCP_REGIONS, "ap": {"gcpRegion": "asia-southeast1", "service": "voicefleet-gcp-ap-dispatcher"}}
    two, three = by_urn(front_door("gcp", GCP_REGIONS)), by_urn(front_door("gcp", more))
    assert [three[urn].type for urn in set(three) - set(two)] == [NEG] and set(two) <= set(three)
    changed = sorted(two[urn].type for urn in two if inputs(two[urn]) != inputs(three[urn]))
    assert changed == [BACKEND]  # updated in place before the old NEG (on a removal) is deleted


@pytest.mark.parametrize(("cloud", "regions", "overrides", "words"), [
    ("aws", {}, {}, "frontDoorRegions must map every region's name"),
    ("aws", {"EU": AWS_REGIONS["eu"]}, {}, "'EU' is not a region name"),
    ("aws", {"eu": {**AWS_REGIONS["eu"], "url": "http://eu.voice.example.com"}}, {}, "must be https"),
    ("aws", {**AWS_REGIONS, "ap": {"url": "https://eu.voice.example.com", "awsRegion": "ap-southeast-1"}}, {},
     "the same URL"),
    ("aws", {"eu": {**AWS_REGIONS["eu"], "url": "https://voice.example.com"}}, {}, "the front door's own name"),
    ("aws", {"eu": {**AWS_REGIONS["eu"], "awsRegion": "Ireland"}}, {}, "eu.awsRegion must be like eu-west-1"),
    ("aws", AWS_REGIONS, {"frontDoorZone": "voice-example-com"}, "frontDoorZone must be a Route 53 hosted zone id"),
    ("aws", AWS_REGIONS, {"frontDoorDomain": ""}, "frontDoorDomain is required"),
    ("gcp", {**GCP_REGIONS, "eu2": {**GCP_REGIONS["eu"], "service": "other"}}, {}, "both in europe-west1"),
    ("gcp", {"eu": {"gcpRegion": "europe-west1"}}, {}, "eu.service must be like"),
])
def test_a_bad_front_door_is_refused_naming_the_key(cloud: str, regions: dict[str, Any], overrides: dict[str, str],
                                                    words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        front_door(cloud, regions, **overrides)
    assert "Invalid stack configuration: voicefleet:" in str(caught.value) and words in str(caught.value)


# --- the preflight's rules: each flags the shape Route 53 or the Compute API would refuse ----------------

def replaced(reg: Registration, **changes: Any) -> Registration:
    return dataclasses.replace(reg, inputs={**reg.inputs, **changes})


def test_route53_rules_flag_what_the_provider_or_the_api_refuses() -> None:
    run = front_door("aws", AWS_REGIONS)
    check, *_ = run.of_type(HEALTH_CHECK)
    eu, us = run.of_type(RECORD)
    assert preflight.health_check_violations([replaced(check, requestInterval=20)])
    assert preflight.health_check_violations([replaced(check, failureThreshold=11)])
    assert preflight.health_check_violations([replaced(check, type="HTTPZ")])
    assert preflight.health_check_violations([replaced(check, fqdn="")])
    assert preflight.record_violations([eu, replaced(us, setIdentifier=eu.inputs["setIdentifier"])])
    assert preflight.record_violations([replaced(eu, setIdentifier="")])
    assert preflight.record_violations([replaced(eu, latencyRoutingPolicies=[{}])])
    assert preflight.record_violations([eu, replaced(us, latencyRoutingPolicies=[],
                                                     weightedRoutingPolicies=[{"weight": 1}])])
    assert preflight.record_violations([dataclasses.replace(eu, delete_before_replace=False)])
    assert preflight.record_violations([eu, us]) == []


def test_a_serverless_backend_with_a_health_check_is_flagged() -> None:
    run = front_door("gcp", GCP_REGIONS)
    backend = run.one(BACKEND)
    negs = run.of_type(NEG)
    assert preflight.serverless_backend_violations([*negs, replaced(backend, healthChecks=["hc"])])
    assert preflight.serverless_backend_violations([*negs, replaced(backend, timeoutSec=3600)])
    assert preflight.serverless_backend_violations([*negs, backend]) == []


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_front_door_passes_the_policy_packs_resource_policies(cloud: str) -> None:
    from policy import rules

    run = front_door(cloud, AWS_REGIONS if cloud == "aws" else GCP_REGIONS)
    found = [f"{r.type} {r.name}: {m}" for r in run.registrations for _, (_, check) in rules.RESOURCE_CHECKS.items()
             for m in check(r.type, inputs(r))]
    assert found == []


def test_a_region_is_healthy_to_the_front_door_only_when_its_dispatcher_says_ok() -> None:
    """Route 53 matches its string in /healthz's body: a region whose store is down answers 200
    `degraded` (its replicas stay in), and is taken out of the front door's answers."""
    from starlette.responses import JSONResponse

    from stacks.aws.front_door import HEALTHY_TEXT

    assert HEALTHY_TEXT.encode() in JSONResponse({"status": "ok", "machines": "ecs"}).body
    assert HEALTHY_TEXT.encode() not in JSONResponse({"status": "degraded", "machines": "ecs"}).body


def test_a_string_match_without_its_string_is_refused_at_preview() -> None:
    from stacks.tools.preflight.front_door import health_check_violations

    run = front_door("aws", AWS_REGIONS)
    check = run.of_type(HEALTH_CHECK)[0]
    check.inputs["searchString"] = ""
    assert any("search_string" in v for v in health_check_violations([check]))


def test_the_gcp_front_door_says_at_preview_that_it_keeps_a_degraded_region_and_how_to_take_it_out() -> None:
    """Cloud Run service health follows readiness, which cannot fail on `degraded` without cutting
    the region's own bots off; the difference from AWS is stated on every preview instead."""
    from stacks.gcp.front_door import DEGRADED_STAYS

    _, problems, notes = checked_plan("global-gcp")
    assert problems == [] and DEGRADED_STAYS in notes
    assert "remove the region from frontDoorRegions" in DEGRADED_STAYS
    _, _, aws_notes = checked_plan("global-aws")
    assert not any("store is down" in note for note in aws_notes)

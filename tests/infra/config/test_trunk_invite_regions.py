"""A trunk that places calls, in a deployment of several regions: the plan (and `voicefleet config check`, which
runs the same program) warns that each region's edge sends its INVITEs on by its own way from their one home
region's spacing, naming the per-region `cps` that leaves a margin for it; a deployment of one region, or a
trunk that only takes calls in, is not warned about."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.aws.test_sip_edge import EDGE, EDGE_SECRETS, HTTPS
from tests.infra.config.test_regions import AWS_REGIONS, REGION_SECRET
from tests.infra.conftest import StackRunner


def warnings_of(stack: StackRunner, monkeypatch: pytest.MonkeyPatch, edge: dict[str, Any],
                **regions: str) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: said.append(str(message)))
    secret = {"voicefleet:regionSecret": REGION_SECRET} if regions else {}
    stack("aws", secrets={**EDGE_SECRETS, **secret}, **{**HTTPS, "sipEdge": json.dumps(edge), **regions})
    return [w for w in said if "spaces its INVITEs" in w]


def test_a_calling_trunk_with_two_regions_is_warned_with_its_per_region_cps(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = {**EDGE, "trunks": [{**EDGE["trunks"][0], "cps": 4}]}
    (warning,) = warnings_of(stack, monkeypatch, edge, region="eu", regions=AWS_REGIONS)
    assert "trunk 'twilio' (cps 4) with 2 regions: one home region spaces its INVITEs" in warning
    assert "set this trunk's cps to 2" in warning


def test_one_region_or_a_trunk_that_only_takes_calls_in_is_not_warned(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    assert warnings_of(stack, monkeypatch, EDGE) == []
    inbound = {**EDGE, "trunks": [{k: v for k, v in EDGE["trunks"][0].items() if k not in ("terminationUri",
                                                                                           "callers", "destinations")}]}
    assert warnings_of(stack, monkeypatch, inbound, region="eu", regions=AWS_REGIONS) == []

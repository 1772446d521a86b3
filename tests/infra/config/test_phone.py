"""Phone calls in the stacks: a replaced dispatcher drains for a whole call; carriers' credentials are secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.config.phone import ALB_MAX_DEREGISTRATION_DELAY, deregistration_delay
from tests.images.test_bot_project import project
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.helpers import container, unwrap


def test_the_drain_outlives_a_call_and_its_start_within_the_albs_maximum() -> None:
    assert deregistration_delay(1800) == 1860
    assert deregistration_delay(3540) == ALB_MAX_DEREGISTRATION_DELAY
    assert deregistration_delay(7200) == ALB_MAX_DEREGISTRATION_DELAY  # longer calls are cut: documented


PHONE = {"voicefleet:twilioAuthToken": "SENTINEL-twilio-auth-4c3d", "voicefleet:dailyDialinSecret": "d" * 40}


def calls_project(tmp_path: Path) -> str:
    """A bot project that can take calls (Pipecat's websocket extra: FastAPI), as a carrier needs."""
    return str(project(tmp_path, extra=(("fastapi", "0.115.6"),)))


def test_the_default_bot_project_takes_calls_so_a_carriers_credential_previews(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **PHONE})  # botProject unset: examples/parrot
    assert "TWILIO_AUTH_TOKEN" in {entry["name"] for entry in container(run, "-dispatcher")["secrets"]}


def test_carrier_credentials_reach_the_dispatcher_by_reference_only(stack: StackRunner, tmp_path: Path) -> None:
    run = stack("aws", secrets={**SECRETS, **PHONE}, botProject=calls_project(tmp_path))
    dispatcher = container(run, "-dispatcher")
    names = {entry["name"] for entry in dispatcher["secrets"]}
    assert {"TWILIO_AUTH_TOKEN", "DAILY_DIALIN_SECRET"} <= names
    assert all(entry["name"] not in ("TWILIO_AUTH_TOKEN", "DAILY_DIALIN_SECRET") for entry in dispatcher["environment"])
    stores = "aws:secretsmanager/secretVersion:SecretVersion"
    holding = [r.type for r in run.registrations if "SENTINEL-twilio-auth-4c3d" in json.dumps(unwrap(r.inputs))]
    assert holding == [stores]


def test_gcp_dispatcher_reads_carrier_credentials_from_secret_manager(stack: StackRunner, tmp_path: Path) -> None:
    run = stack("gcp", secrets={**SECRETS, **PHONE}, botProject=calls_project(tmp_path))
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    env = {e["name"]: e for e in service.inputs["template"]["containers"][0]["envs"]}
    assert "valueSource" in env["TWILIO_AUTH_TOKEN"] and "value" not in env["TWILIO_AUTH_TOKEN"]


def test_an_exotel_key_without_its_token_is_refused(stack: StackRunner) -> None:
    with pytest.raises(Exception, match="exotelApiToken"):
        stack("aws", secrets={**SECRETS, "voicefleet:exotelApiKey": "k"})

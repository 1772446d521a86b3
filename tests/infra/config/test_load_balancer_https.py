"""stacks/config/load_balancer_https.py: what the stack file alone shows wrong about the load balancer's HTTPS."""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from tests.infra.conftest import StackRunner

US_CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b1f6a2e-3c4d"


def _refusal(stack: StackRunner, **overrides: str) -> str:
    with pytest.raises(SettingsError) as caught:
        stack("aws", **overrides)
    return str(caught.value)


def test_a_certificate_of_another_region_is_refused_naming_both_regions(stack: StackRunner) -> None:
    message = _refusal(stack, allowPlainHttp="false", certificateArn=US_CERTIFICATE)  # the stack is in eu-west-1
    assert "voicefleet:certificateArn" in message and "us-east-1" in message and "aws:region is eu-west-1" in message
    assert "arn:aws:acm:eu-west-1:<account>:certificate/<id>" in message


def test_a_certificate_of_the_stacks_region_passes(stack: StackRunner) -> None:
    stack("aws", allowPlainHttp="false", certificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/0b1f6a2e")


def test_plain_http_in_a_prod_stack_is_refused_naming_the_way_out(stack: StackRunner) -> None:
    message = _refusal(stack, profile="prod")  # the base AWS stack sets allowPlainHttp: true
    assert "voicefleet:allowPlainHttp" in message and "profile: prod" in message
    assert "certificateArn" in message and "pulumi config rm allowPlainHttp" in message

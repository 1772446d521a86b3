"""Finding 10: what a provider said stays in the log; callers get a stable reason and a generic
message (AWS error bodies name accounts and roles, and an endpoint echoing the request may hold
the session token)."""

from __future__ import annotations

import logging

import pytest

from dispatcher.machines.base import MachinesError
from tests.security.conftest import MakeDispatcher

LEAKY = ("User: arn:aws:iam::123456789012:assumed-role/vf-dispatcher/task is not authorized to perform "
         "ecs:RunTask on arn:aws:ecs:eu-west-1:123456789012:task-definition/vf-bot; "
         "x-amz-security-token:FQoGZXIvYXdzEBYaDSECRETTOKEN")


async def test_a_providers_message_reaches_the_log_but_never_the_caller(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_dispatcher()

    async def refused(spec: object) -> object:
        raise MachinesError("ecs_unauthorized", LEAKY)

    monkeypatch.setattr(d.state.machines, "launch", refused)
    with caplog.at_level(logging.WARNING):
        answer = await d.client.post("/start", json={"body": {}})

    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "ecs_unauthorized"  # control: the stable reason is kept
    assert "arn:" not in answer.text and "SECRETTOKEN" not in answer.text and "123456789012" not in answer.text
    assert "arn:aws:iam::123456789012" in caplog.text  # the operator still sees why

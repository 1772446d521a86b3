"""The stack's settings as the program's first step reads them (infra/__main__.py: `stack_settings.load`), under
the plan's mocks, without the program's resources: about 0.2 s of CPU where a whole run of a prod stack takes 3 s
(measured with time.process_time around each, on aws-prod and gcp-prod). What is decided there (a key's value, a
refusal, the notes the read says with pulumi.log) is checked here; that the program then builds on these settings
is held by the tests that run it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from stacks.config import settings as stack_settings
from stacks.config.model import Settings
from stacks.config.reader import SettingsError
from stacks.tools.mocks import RecordingMocks, run_function
from stacks.tools.plan import stack_config


def read_settings(config: Mapping[str, str], secret_keys: Sequence[str], *, stack: str) -> Settings:
    region = config.get("aws:region") or config.get("gcp:region") or "us-east-1"
    answers = RecordingMocks(region=region, gcp_project=config.get("gcp:project", "voicefleet-test"))
    read: list[Settings] = []
    run_function(lambda: read.append(stack_settings.load()), answers, config=config, secret_keys=secret_keys,
                 stack=stack)
    return read[0]


def refusal(stack: str, overrides: Mapping[str, str]) -> str:
    """What the read of the stack file's settings with `overrides` (voicefleet's keys, set plain) refuses: the
    refusal the plan prints after `stack: ` and exits 2 on, without the plan's replay of the stack file first."""
    config, secret_keys = stack_config(stack)
    for key, value in overrides.items():
        config[f"voicefleet:{key}"] = value
        secret_keys = [name for name in secret_keys if name != f"voicefleet:{key}"]
    with pytest.raises(SettingsError) as refused:
        read_settings(config, secret_keys, stack=stack)
    return str(refused.value)

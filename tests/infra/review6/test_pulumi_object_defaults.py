"""`pulumi up` also hands the program Pulumi.yaml's array and object defaults, as JSON text
(pulumi/pulumi sdk/go/common/workspace: createConfigValue -> config.NewObjectValue(json.Marshal(v))).
The existing test leaves those out; `[]` is then refused as 'must be a non-empty list'."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.infra.conftest import StackRunner, config_for
from tests.infra.helpers import ROOT


def object_defaults() -> dict[str, str]:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    return {key: json.dumps(spec["default"]) for key, spec in declared.items()
            if isinstance(spec, dict) and isinstance(spec.get("default"), list | dict) and ":" not in key}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_stack_previews_with_the_array_and_object_defaults_pulumi_hands_it(stack: StackRunner, cloud: str) -> None:
    given = config_for(cloud, {}, None)
    stack(cloud, **{k: v for k, v in object_defaults().items() if f"voicefleet:{k}" not in given})


def test_an_azure_stack_previews_with_every_scalar_default_pulumi_hands_it(stack: StackRunner) -> None:
    """The scalar-defaults test of tests/infra/config/test_settings.py, for the cloud it leaves out."""
    from tests.infra.config.test_settings import pulumi_yaml_defaults

    given = config_for("azure", {}, None)
    stack("azure", **{k: v for k, v in {**pulumi_yaml_defaults(), **object_defaults()}.items()
                      if f"voicefleet:{k}" not in given})

"""Every invoke in every example stack's program names an explicit provider: Pulumi.yaml disables the
default providers, and the engine refuses an invoke that would go through one ("Default provider for
'gcp' disabled. '<token>' must use an explicit provider"). The mocks refuse it as the engine does
(stacks/tools/mocks.py); this runs each stack file with `accountQuotas` on where it reads the account."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import disabled_default_providers, run_program
from stacks.tools.paths import STACK_FILES
from stacks.tools.plan import stack_config

QUOTA_READS = {"aws": "aws:servicequotas/getServiceQuota:getServiceQuota",
               "gcp": "gcp:cloudquota/getSQuotaInfo:getSQuotaInfo"}
STACKS = sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in STACK_FILES.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", STACKS)
def test_every_invoke_of_a_stack_goes_through_an_explicit_provider(stack: str) -> None:
    config, secret_keys = stack_config(stack)
    reads = config.get("voicefleet:cloud") in QUOTA_READS and config.get("voicefleet:role") != "frontDoor"
    if reads:
        config["voicefleet:accountQuotas"] = "true"  # the account's quota read is an invoke too
    run = run_program(config, secret_keys, stack=stack)
    disabled = disabled_default_providers()
    assert [i.token for i in run.invokes if i.token.split(":")[0] in disabled and not i.provider] == []
    if reads:  # the read this guards is made
        assert QUOTA_READS[config["voicefleet:cloud"]] in {invoke.token for invoke in run.invokes}


def test_the_mocks_refuse_an_invoke_through_a_disabled_default_provider_as_the_engine_does() -> None:
    from stacks.tools.mocks import refuse_default_provider

    with pytest.raises(RuntimeError, match="Default provider for 'gcp' disabled"):
        refuse_default_provider(QUOTA_READS["gcp"], "")
    refuse_default_provider(QUOTA_READS["gcp"], "urn:pulumi:s::p::pulumi:providers:gcp::x::id")

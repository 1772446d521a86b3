"""The AWS store's ECPU ceiling against the phone calls the stack admits (stacks/config/store_capacity.py):
every session may be a call whose frames cross the store, 100 PUBLISHes a second."""

from __future__ import annotations

import pytest

from stacks.config import store_capacity
from stacks.config.reader import SettingsError
from stacks.tools.mocks import run_program, unwrap
from stacks.tools.plan import stack_config
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

REPLICAS = {**CHANNEL["aws"], "dispatcherCount": "2"}
STORE_SECRETS = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:storePassword": "SENTINEL-store-password-0123456789"}
CACHE = "aws:elasticache/serverlessCache:ServerlessCache"


def ceiling(registrations: list) -> int:  # type: ignore[type-arg]
    (cache,) = [r for r in registrations if r.type == CACHE]
    return int(unwrap(cache.inputs)["cacheUsageLimits"]["ecpuPerSeconds"][0]["maximum"])


def test_aws_prods_store_has_room_for_every_session_it_admits_to_be_a_relayed_call() -> None:
    config, secret_keys = stack_config("aws-prod")
    run = run_program(config, secret_keys, stack="aws-prod")
    env = {e["name"]: e["value"] for e in container(run, "-dispatcher")["environment"]}
    sessions = int(env["MAX_CONCURRENT_SESSIONS"])
    assert sessions == 2500  # the 60/min day's peak + 25 % (docs/reserve.md)
    assert store_capacity.relayed_calls(ceiling(run.registrations)) >= sessions


def test_a_relayed_call_is_sized_from_its_frame_rate_both_ways() -> None:
    assert store_capacity.PUBLISHES_PER_RELAYED_CALL == 100  # 20 ms frames, each direction
    assert store_capacity.ECPU_PER_RELAYED_CALL == 200
    assert store_capacity.needed(200) == 45_000 and store_capacity.relayed_calls(45_000) == 200
    assert store_capacity.needed(1) == 5200 and store_capacity.needed(10_000) == 2_005_000  # in ElastiCache's range


@pytest.mark.parametrize(("sessions", "expected"), [("10", 7000), ("500", 105_000)])
def test_the_ceiling_follows_max_concurrent_sessions(stack: StackRunner, sessions: str, expected: int) -> None:
    run = stack("aws", secrets=STORE_SECRETS, maxConcurrentSessions=sessions, **REPLICAS)
    assert ceiling(run.registrations) == expected


def test_a_higher_ceiling_is_kept(stack: StackRunner) -> None:
    run = stack("aws", secrets=STORE_SECRETS, maxConcurrentSessions="10", storeEcpuPerSecond="50000", **REPLICAS)
    assert ceiling(run.registrations) == 50_000


def test_a_ceiling_too_low_for_the_sessions_is_refused_with_what_it_allows(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match=r"storeEcpuPerSecond must be at least 45000 for maxConcurrentSessions=200 "
                                            r".*\(got 5000: room for 0\)"):
        stack("aws", secrets=STORE_SECRETS, maxConcurrentSessions="200", storeEcpuPerSecond="5000", **REPLICAS)

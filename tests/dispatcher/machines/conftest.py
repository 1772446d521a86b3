"""Fixtures for provider tests: the fakes of every external API (tests/fakes/) and `harness`,
one provider at a time against its fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dispatcher.machines.harness import (
    Harness,
    aci_harness,
    cerebrium_harness,
    cloudrun_harness,
    ecs_harness,
    fly_harness,
    gce_harness,
    k8s_harness,
    k8s_sandbox_harness,
    modal_harness,
)
from tests.support.redis_server import RedisServer, redis_server

PROVIDERS = ["ecs", "gce", "fly", "cloudrun", "modal", "aci", "k8s", "k8s-sandbox"]


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request)


def harness_for(request: pytest.FixtureRequest) -> Harness:
    name = request.param
    if name == "fly":
        return fly_harness(request.getfixturevalue("fake_fly"))
    if name == "cloudrun":
        return cloudrun_harness(request.getfixturevalue("fake_cloud_run_jobs"))
    if name == "modal":
        return modal_harness(request.getfixturevalue("fake_modal"))
    if name == "aci":
        return aci_harness(request.getfixturevalue("fake_aci"))
    if name == "gce":
        return gce_harness(request.getfixturevalue("fake_gce"))
    if name == "k8s":
        return k8s_harness(request.getfixturevalue("fake_k8s"))
    if name == "k8s-sandbox":
        return k8s_sandbox_harness(request.getfixturevalue("fake_k8s_sandbox"))
    if name == "cerebrium":
        return cerebrium_harness(request.getfixturevalue("fake_cerebrium"))
    return ecs_harness(request.getfixturevalue("fake_ecs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server that a module's replicas share (each test its own key prefix)."""
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own: the store its replicas share (a test file may keep its own)."""
    with redis_server(tmp_path) as running:
        yield running

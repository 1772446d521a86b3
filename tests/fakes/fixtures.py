"""pytest fixtures serving the fakes. Import them into a conftest (`from tests.fakes.fixtures import *`)
or register the module as a plugin in the top-level conftest (`pytest_plugins = ["tests.fakes.fixtures"]`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.arm_aci import FakeArmAci, serve_tls
from tests.fakes.cerebrium import FakeCerebrium
from tests.fakes.cloud_run import FakeCloudRun
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs
from tests.fakes.daily import FakeDaily
from tests.fakes.ecs import CHANNEL_AUDIENCE as ECS_CHANNEL_AUDIENCE
from tests.fakes.ecs import EcsProxy, own_cluster, provision
from tests.fakes.fly import FakeFly
from tests.fakes.gce import FakeGce
from tests.fakes.k8s import FakeKubernetes
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.fakes.key_vault import FakeKeyVault
from tests.fakes.modal_server import FakeModal
from tests.fakes.server import FakeApi, free_port, serve

__all__ = [
    "fake_aci", "fake_key_vault", "fake_cerebrium", "fake_cloud_run", "fake_cloud_run_jobs", "fake_daily",
    "fake_ecs", "fake_fly", "fake_gce", "fake_k8s", "fake_k8s_cell", "fake_k8s_sandbox", "fake_modal", "moto_ecs",
]


def _serve(fake: FakeApi, suffix: str = "") -> Iterator[Any]:
    with serve(fake, suffix):
        yield fake


@pytest.fixture
def fake_daily() -> Iterator[FakeDaily]:
    yield from _serve(FakeDaily(), "/v1")  # DAILY_API_URL


@pytest.fixture
def fake_fly() -> Iterator[FakeFly]:
    yield from _serve(FakeFly())  # FLY_API_HOST


@pytest.fixture
def fake_cerebrium() -> Iterator[FakeCerebrium]:
    yield from _serve(FakeCerebrium(), "/v4")  # CEREBRIUM_API_URL


@pytest.fixture
def fake_cloud_run() -> Iterator[FakeCloudRun]:
    yield from _serve(FakeCloudRun())  # CLOUD_RUN_API_URL (/v2), MONITORING_API_URL (/v3)


@pytest.fixture
def fake_cloud_run_jobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudRunJobs]:
    for fake in _serve(FakeCloudRunJobs(), "/v2"):  # CLOUDRUN_API_URL
        # Application Default Credentials, as google-auth finds them: a key naming the fake's token endpoint.
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", fake.credentials_file)
        yield fake


@pytest.fixture
def fake_aci() -> Iterator[FakeArmAci]:
    with serve_tls(FakeArmAci()) as fake:  # ARM_ENDPOINT, over TLS (ACI_CA_BUNDLE trusts its certificate)
        yield fake


@pytest.fixture
def fake_key_vault(fake_aci: FakeArmAci) -> Iterator[FakeKeyVault]:
    with serve_tls(FakeKeyVault(fake_aci), like=fake_aci) as fake:  # its tokens and certificate: fake ARM's
        yield fake


@pytest.fixture
def fake_gce() -> Iterator[FakeGce]:
    yield from _serve(FakeGce(), "/compute/v1")  # GCE_API_URL


@pytest.fixture
def fake_modal() -> Iterator[FakeModal]:
    fake = FakeModal().start()  # MODAL_SERVER_URL (plain h2c), MODAL_TOKEN_ID/_SECRET
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def moto_ecs() -> Iterator[dict[str, str]]:
    """A moto server on loopback with the bot's VPC, cluster and task definition; yields the
    ECS_* environment (pointing at moto itself). Dummy credentials: nothing can reach AWS."""
    from moto.moto_api import state_manager
    from moto.server import ThreadedMotoServer

    # moto advances a task RUNNING → … → STOPPED on its own as it is described; tests move it
    # explicitly instead, as ECS would (tests/dispatcher/machines/harness.py).
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {**provision(f"http://127.0.0.1:{port}"), "MOTO_URL": f"http://127.0.0.1:{port}"}
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def fake_ecs(moto_ecs: dict[str, str]) -> Iterator[EcsProxy]:
    """The ECS proxy (clientToken idempotency, throttling knobs) in front of the moto server;
    `fake.env` is the provider environment, with AWS_ENDPOINT_URL at the proxy and
    AWS_ENDPOINT_URL_STS at the fake STS the bots' task identities are checked with; ECS_CLUSTER
    names a cluster of the test's own (the moto server is the session's)."""
    proxy = EcsProxy(moto_ecs["MOTO_URL"])
    with serve(proxy.sts), serve(proxy.task_credentials):
        for served in _serve(proxy):
            env = {k: v for k, v in moto_ecs.items() if k != "MOTO_URL"}
            env["ECS_CLUSTER"] = own_cluster(moto_ecs["MOTO_URL"])
            # The dispatcher checks bots' task identities against the bots' task role, at the fake STS.
            served.env = {**env, "AWS_ENDPOINT_URL": served.url, "AWS_ENDPOINT_URL_STS": proxy.sts.url,
                          "ECS_BOT_TASK_ROLE_ARNS": proxy.task_roles.role_arn,
                          "BOT_IDENTITY_AUDIENCE": ECS_CHANNEL_AUDIENCE}
            yield served


@pytest.fixture
def fake_k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetes]:
    yield from _serve_k8s(FakeKubernetes(), tmp_path_factory)


@pytest.fixture
def fake_k8s_cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetes]:
    """A second cluster beside `fake_k8s` (K8S_CELLS), which takes only its own dispatcher token."""
    fake = FakeKubernetes()
    fake.token = "k8s-fake-cell-token-fedcba9876543210"  # noqa: S105 - a fake's
    yield from _serve_k8s(fake, tmp_path_factory)


@pytest.fixture
def fake_k8s_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAgentSandbox]:
    """The API server with agent-sandbox's extensions and their controller (K8S_MODE=agent-sandbox)."""
    yield from _serve_k8s(FakeAgentSandbox(), tmp_path_factory)


def _serve_k8s(fake: FakeKubernetes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    fake.token_file = str(tmp_path_factory.mktemp("k8s") / "token")  # K8S_TOKEN_FILE, as a Pod's is mounted
    with open(fake.token_file, "w", encoding="utf-8") as file:
        file.write(fake.token + "\n")
    yield from _serve(fake)  # K8S_API_URL

"""The in-cluster store's own configuration on a real server: the file the stack puts in its Secret
(stacks/k8s/store.py), read by redis-server and valkey-server, and the dispatcher's store client
signing in with the REDIS_URL and REDIS_PASSWORD the stack gives the dispatcher's pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.leases import Leases
from dispatcher.store.replicas import Replicas
from stacks.config.store import PASSWORD_VARIABLE, URL_VARIABLE
from stacks.k8s.store import NAME
from stacks.tools.mocks import Run
from tests.infra.k8s.conftest import K8sRunner, container_env
from tests.infra.k8s.test_store import PASSWORD, PREVIOUS, SECRETS, in_cluster, valkey_conf
from tests.support.redis_server import ENGINES, ConfiguredServer, configured_server
from tests.support.waiting import wait_until

MESSAGE_SECRET = SECRETS["voicefleet:storeMessageSecret"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The program runs outside the tests' event loop (it runs its own), so the async tests take it from these.
@pytest.fixture
def stack_run(k8s_stack: K8sRunner) -> Run:
    return in_cluster(k8s_stack)


@pytest.fixture
def rotation_run(k8s_stack: K8sRunner) -> Run:
    return in_cluster(k8s_stack, secrets={**SECRETS, "voicefleet:storePreviousPassword": PREVIOUS})


@pytest.fixture
def server(stack_run: Run, tmp_path: Path, engine: str) -> Iterator[ConfiguredServer]:
    with configured_server(tmp_path, valkey_conf(stack_run), binary=engine) as running:
        yield running


def dispatcher_env(run: Run, port: int) -> dict[str, str]:
    """The dispatcher pod's store variables as the stack sets them, its Service's name for this machine's
    address (REDIS_PASSWORD is the Secret's value, which the pod reads by reference)."""
    url = container_env(run)[URL_VARIABLE]["value"]
    service = f"{NAME}.voicefleet.svc:6379"
    assert service in url
    return {URL_VARIABLE: url.replace(service, f"127.0.0.1:{port}"), PASSWORD_VARIABLE: PASSWORD,
            "REDIS_MESSAGE_SECRET": MESSAGE_SECRET}


def client(port: int, **sign_in: str) -> redis.Redis:
    # No retry: a refused sign-in is a ConnectionError to redis-py, which it would otherwise try again.
    return redis.Redis(port=port, socket_timeout=10, decode_responses=True, driver_info=None,
                       retry=Retry(NoBackoff(), 0),
                       maint_notifications_config=MaintNotificationsConfig(enabled=False), **sign_in)


async def signs_in_and_works(env: dict[str, str]) -> str | None:
    """What a dispatcher replica does first with its store: announce itself, take a lease (a script,
    loaded then run by hash), find the live replicas (a SCAN); the lease's holder, read back."""
    settings = StoreSettings.from_env({**env, "REPLICA_ID": "r-k8s"})
    assert settings is not None and settings.password == env[PASSWORD_VARIABLE]
    store = Store(settings)
    try:
        await Replicas(store).announce("serving")
        assert await Replicas(store).live() == {"r-k8s": "serving"}
        leases = Leases(store)
        assert await leases.take(store.key("start", "k-1"), "r-k8s", 60) == "r-k8s"
        return await leases.holder(store.key("start", "k-1"))
    finally:
        await store.aclose()


async def test_the_dispatchers_store_client_signs_in_as_the_stack_sets_it_and_works(
        stack_run: Run, server: ConfiguredServer) -> None:
    assert await signs_in_and_works(dispatcher_env(stack_run, server.port)) == "r-k8s"


def in_append_only_file(server: ConfiguredServer, text: str) -> bool:
    """Whether the server has written `text` to its append-only files (what a restart replays)."""
    return any(text.encode() in file.read_bytes() for file in (server.workdir / "appendonlydir").glob("*.aof"))


async def test_what_it_wrote_outlives_a_crash_of_the_server(stack_run: Run, server: ConfiguredServer) -> None:
    env = dispatcher_env(stack_run, server.port)
    settings = StoreSettings.from_env(env)
    assert settings is not None
    lease = f"{settings.prefix}start:k-1"
    assert await signs_in_and_works(env) == "r-k8s"
    # `appendfsync everysec` answers a write before it is in the file while the last second's fsync
    # is still running (a busy disk), for 2 s at most (docs/kubernetes.md, "What a restart keeps").
    wait_until(lambda: in_append_only_file(server, lease), "the lease in the server's append-only file", timeout=30,
               detail=lambda: (server.workdir / f"{server.binary}.log").read_text(errors="replace")[-2000:])
    server.kill()  # SIGKILL: no shutdown, no save; the append-only file is all there is
    server.start()
    store = Store(settings)
    try:
        assert await Leases(store).holder(store.key("start", "k-1")) == "r-k8s"
    finally:
        await store.aclose()


def test_the_default_user_is_refused(server: ConfiguredServer) -> None:
    with client(server.port) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    for password in ("", "nopass", PASSWORD):
        with client(server.port, username="default", password=password) as default, \
                pytest.raises(redis.AuthenticationError):
            default.ping()


@pytest.mark.parametrize("command", [("FLUSHALL",), ("CONFIG", "GET", "maxmemory"), ("KEYS", "*"),
                                     ("EVAL", "return 1", "0"), ("ACL", "LIST"), ("GET", "other"),
                                     ("PUBLISH", "other", "x")])
def test_what_the_acl_leaves_out_is_refused_to_the_stacks_user(server: ConfiguredServer,
                                                                 command: tuple[str, ...]) -> None:
    with client(server.port, username="voicefleet", password=PASSWORD) as user:
        assert user.ping() is True
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.execute_command(*command)


async def test_during_a_rotation_both_passwords_sign_in_and_no_other(rotation_run: Run, stack_run: Run,
                                                                    tmp_path: Path, engine: str) -> None:
    with configured_server(tmp_path, valkey_conf(rotation_run), binary=engine) as rotating:
        env = dispatcher_env(rotation_run, rotating.port)
        assert await signs_in_and_works(env) == "r-k8s"
        assert await signs_in_and_works({**env, PASSWORD_VARIABLE: PREVIOUS}) == "r-k8s"
        with client(rotating.port, username="voicefleet", password=PASSWORD + "x") as wrong, \
                pytest.raises(redis.AuthenticationError):
            wrong.ping()
    # Once the rotation ends, the old one is refused.
    (tmp_path / "after").mkdir()
    with configured_server(tmp_path / "after", valkey_conf(stack_run), binary=engine) as after, \
            client(after.port, username="voicefleet", password=PREVIOUS) as old, \
            pytest.raises(redis.AuthenticationError):
        old.ping()

"""The dispatcher image's structure, read from images/dispatcher.Dockerfile."""

from __future__ import annotations

import re

import pytest

from tests.images.closure import DISPATCHER_DOCKERFILE, uv_sync_argv
from tests.images.dockerfile import Dockerfile, Stage, parse_file


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_file(DISPATCHER_DOCKERFILE)


@pytest.fixture(scope="module")
def runtime(dockerfile: Dockerfile) -> Stage:
    return dockerfile.final


def test_dispatcher_image_builds_in_one_stage_and_runs_from_another(dockerfile: Dockerfile) -> None:
    assert {"build", "runtime"} <= {stage.name for stage in dockerfile.stages}
    assert dockerfile.final.name == "runtime"
    assert dockerfile.stage("build").base == dockerfile.final.base == "${PYTHON_IMAGE}"


def test_dispatcher_installs_only_the_projects_own_dependencies(dockerfile: Dockerfile) -> None:
    argv = uv_sync_argv(dockerfile.stage("build"))
    assert "--frozen" in argv and "--no-default-groups" in argv
    assert not {"--group", "--all-groups", "--only-group"} & set(argv)


def test_dispatcher_listens_on_all_interfaces_on_port_8080(runtime: Stage) -> None:
    env = runtime.env()
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8080")
    assert [expose.args for expose in runtime.all("EXPOSE")] == ["8080"]


def test_dispatcher_entrypoint_is_python_m_dispatcher_under_tini(runtime: Stage) -> None:
    entrypoint = runtime.last("ENTRYPOINT")
    assert entrypoint is not None
    argv = entrypoint.exec_form()
    assert argv[0].endswith("/tini")
    assert argv[argv.index("--") + 1 :] == ["python", "-m", "dispatcher"]
    # uvicorn re-raises SIGTERM after its graceful shutdown; -e 143 makes that a clean exit
    # (images/ci/build.sh checks the exit code of the real image after SIGTERM).
    assert argv[1 : argv.index("--")] == ["-e", "143"]


def test_dispatcher_runtime_copies_no_bot_code_and_installs_nothing(runtime: Stage) -> None:
    from_context = [copy.args.split()[:-1] for copy in runtime.all("COPY") if copy.flag("from") is None]
    # No bot code; the SIP edge's, which its host runs from this image (stacks/shared/sip_edge_host.py).
    assert from_context == [["dispatcher/"], ["botchannel/"], ["voicefleet_settings/"], ["sipedge/"]]
    assert all("apt-get" not in run.args and "pip" not in run.args for run in runtime.all("RUN"))


def test_dispatcher_declares_no_healthcheck_because_the_platforms_probe_it(runtime: Stage) -> None:
    # ECS and Cloud Run ignore a Dockerfile HEALTHCHECK; the stack probes GET /healthz instead.
    assert runtime.all("HEALTHCHECK") == []


def _kept_botocore_models() -> set[str]:
    from tests.images.closure import DISPATCHER_DOCKERFILE
    from tests.images.dockerfile import parse_file

    build = parse_file(DISPATCHER_DOCKERFILE).stage("build")
    (prune,) = [run.args for run in build.all("RUN") if "botocore/data" in run.args]
    assert "-maxdepth 1 -type d" in prune  # directories of service models only, never the top-level files
    return set(re.findall(r"! -name (\S+)", prune))


def test_build_keeps_only_the_botocore_models_the_dispatcher_uses() -> None:
    """botocore's models of every other AWS service are about 25 MB of a closure budgeted at 80;
    images/ci/build.sh builds an ECS and an S3 client in the real image to prove what is kept suffices."""
    from tests.images.closure import DISPATCHER_DOCKERFILE
    from tests.images.dockerfile import parse_file

    assert _kept_botocore_models() == {"ecs", "s3", "sts", "sso", "sso-oidc"}
    runtime = parse_file(DISPATCHER_DOCKERFILE).final
    assert all("botocore" not in run.args for run in runtime.all("RUN"))


def test_every_aws_service_the_image_calls_keeps_its_model() -> None:
    """ECS over the dispatcher's own JSON API (dispatcher/machines/ecs/json_api.py), S3 through a botocore
    client (the bucket that keeps calls): a service called from code the image copies, whose model the
    build pruned, would fail on AWS alone, at its first call."""
    from pathlib import Path

    from tests.images.closure import DISPATCHER_DOCKERFILE
    from tests.images.dockerfile import parse_file

    root = Path(__file__).resolve().parents[2]
    copied = [copy.args.split()[0] for copy in parse_file(DISPATCHER_DOCKERFILE).final.all("COPY")
              if copy.flag("from") is None]
    sources = [path.read_text() for folder in copied for path in (root / folder).rglob("*.py")]
    # botocore's clients only, each named by a literal: the image carries no boto3, and a name held in a
    # variable would pass by this test unseen.
    assert not any(re.search(r"^\s*(?:import|from) boto3\b", source, re.M) for source in sources)
    made = sum(source.count("create_client(") for source in sources)
    clients = re.compile(r"create_client\(\s*(?:service_name\s*=\s*)?[\"']([a-z0-9-]+)[\"']")
    assert made == sum(len(clients.findall(source)) for source in sources), "a client named by a variable"
    json_api = re.compile(r"AwsJsonApi\([^)]*service=\"([a-z0-9-]+)\"", re.S)
    services = {name for source in sources for pattern in (json_api, clients) for name in pattern.findall(source)}
    assert services == {"ecs", "s3"}
    assert services <= _kept_botocore_models()

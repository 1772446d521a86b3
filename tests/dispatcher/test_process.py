"""`python -m dispatcher` as a real process: configuration errors, and no orphaned bots."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import children_of, run_dispatcher, wait_gone


@pytest.fixture
def dispatcher_process(tmp_path):
    # No reserve: these count the bots of the sessions they start (test_reserve_process.py has the reserve).
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
           "STANDIN_MODE": "serve", "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as running:
        yield running


def start_bots(base: str, count: int) -> None:
    for _ in range(count):
        assert httpx.post(f"{base}/start?wait=started", json={}, timeout=20).status_code == 201


def test_sigterm_stops_every_bot_before_the_dispatcher_exits(dispatcher_process):
    process, base = dispatcher_process.process, dispatcher_process.base_url
    start_bots(base, 2)
    bots = children_of(process.pid)
    assert len(bots) == 2
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so supervisors see why it exited.
    assert process.wait(timeout=15) == -signal.SIGTERM
    assert wait_gone(bots, timeout=1) == []
    # Stopped by the dispatcher's shutdown, not merely by the parent-death signal:
    assert dispatcher_process.log().count("exited (stopped)") == 2


def test_a_killed_dispatcher_leaves_no_orphan_bots(dispatcher_process):
    process, base = dispatcher_process.process, dispatcher_process.base_url
    start_bots(base, 2)
    bots = children_of(process.pid)
    assert len(bots) == 2
    process.kill()
    process.wait()
    assert wait_gone(bots) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MACHINES": "kubernetes"}, "MACHINES='kubernetes' is not one of"),
        ({"HOST": "0.0.0.0"}, "DISPATCHER_API_KEYS must be set to listen on HOST=0.0.0.0"),
        ({"MACHINES": "fly"}, "DISPATCHER_API_KEYS must be set when MACHINES=fly"),
        ({"MAX_CONCURRENT_SESSIONS": "many"}, "MAX_CONCURRENT_SESSIONS='many' is not a whole number"),
        ({"MAX_SESSION_SECONDS": "0"}, "MAX_SESSION_SECONDS=0 must be at least 10"),
        ({"KEEP_ALIVE_SECONDS": "long"}, "KEEP_ALIVE_SECONDS='long' is not a whole number"),
    ],
)
def test_bad_configuration_fails_fast_with_a_message_naming_the_variable(env, message):
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "MACHINES", "DISPATCHER_API_KEYS")}
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher"], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str],
             argv: list[str] | None = None) -> tuple[int, list[str]]:
    """`python -m dispatcher`'s main() in this process (no server starts when the config is bad)."""
    from dispatcher.__main__ import main

    for name in list(os.environ):
        if name.startswith(("MACHINES", "HOST", "PORT", "DISPATCHER_", "DAILY_", "FLY_", "GCE_", "ECS_", "AWS_",
                            "LOG_LEVEL", "REDIS_", "DEEPGRAM_", "OPENAI_", "CARTESIA_", "BOT_FILE", "BOT_PYTHON")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = main(argv or [])
    finally:  # main() installs its root handler on capsys's stream, closed after this test: a later test in
        root.handlers, root.level = handlers, level  # this worker would log into it ("I/O operation on closed file")
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "70000"}, "PORT=70000 must be at most 65535"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not one of debug, info, warning, error, critical"),
        ({"MACHINES": "fly", "DISPATCHER_API_KEYS": "k"},
         "MACHINES=fly needs FLY_API_TOKEN, FLY_APP, BOT_IMAGE (not set); DAILY_API_KEY must be set"),
        ({"MACHINES": "gce", "DISPATCHER_API_KEYS": "k", "GCE_PROJECT": "p"},
         "MACHINES=gce needs GCE_ZONE, GCE_INSTANCE_TEMPLATE (not set)"),
        ({"MACHINES": "ecs", "AWS_DEFAULT_REGION": "eu-west-1"},
         "DISPATCHER_API_KEYS must be set when MACHINES=ecs; MACHINES=ecs needs ECS_CLUSTER, ECS_TASK_DEFINITION, "
         "ECS_SUBNETS, ECS_SECURITY_GROUPS (not set)"),
        ({"MACHINES": "ecs", "DISPATCHER_API_KEYS": "k"}, "needs AWS_REGION, ECS_CLUSTER"),
        ({"BOT_FILE": "/nowhere/bot.py"}, "BOT_FILE='/nowhere/bot.py' is not a file"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "DISPATCHER_API_KEYS must be set with REDIS_URL"),
        ({"DISPATCHER_API_KEYS": "k" * 32 + ",dg-secret-clé"},
         "DISPATCHER_API_KEYS: key 2 of 2 has a control or a non-ASCII character"),
        ({"DISPATCHER_API_KEYS": "dg-secret-one\ndg-secret-two"}, "DISPATCHER_API_KEYS: key 1 of 1 has a control"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "DISPATCHER_API_KEYS": "k" * 32},
         "REDIS_MESSAGE_SECRET must be set with REDIS_URL"),
    ],
)
def test_every_configuration_problem_of_a_mode_is_named_at_once_in_one_line(monkeypatch, capsys, env, message):
    code, lines = run_main(monkeypatch, capsys, env)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("dispatcher: configuration error: "), lines
    assert message in lines[0]
    assert "dg-secret" not in lines[0]


def test_a_port_in_use_is_one_line_and_no_invitation_to_open_it(monkeypatch, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = run_main(monkeypatch, capsys, {}, ["--port", str(port)])
    assert code == 2
    assert lines == [f"dispatcher: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_a_channel_port_in_use_is_one_line_naming_it(monkeypatch, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        channel_port = taken.getsockname()[1]
        code, lines = run_main(monkeypatch, capsys, {"BOT_CHANNEL_PORT": str(channel_port)}, ["--port", "0"])
    assert code == 2
    assert lines == [f"dispatcher: cannot listen on 127.0.0.1:{channel_port}: Address already in use"]

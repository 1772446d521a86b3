"""A Kubernetes (`pods` mode) session end to end: `python -m dispatcher` with MACHINES=k8s on the fake API
server, which runs a real bot process per pod (voicefleet's own channel code: tests/replicas/redialling_bot.py)
with the pod's env, as the kubelet runs the bot image.

The bot dials the channel with the credential its pod was given and its pod's projected token; its hello
is admitted because the API server's TokenReview names its labelled pod (k8s/identity.py); it takes its
session and answers the caller's offer. The session's end deletes the pod, whose bot gets SIGTERM. Cold,
and from the warm reserve (an idle pod claimed by one JSON Patch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel.credentials import PREFIX
from tests.fakes.k8s import FakeKubernetes
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN, SessionApi

pytestmark = pytest.mark.slow  # a dispatcher and a bot process per case

REPO = Path(__file__).resolve().parents[3]
KEY = "k8s-session-key-0123456789"
DEADLINE = 60.0


def dispatcher(tmp_path: Path, fake: FakeKubernetes, port: int | None = None,
               **env: str) -> Iterator[DispatcherProcess]:
    port = port or free_port()
    channel_url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"

    def launch(pod: str, pod_env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{pod}.log", "ab")  # noqa: SIM115 - the process keeps it
        return subprocess.Popen([sys.executable, "-m", "tests.replicas.redialling_bot"], cwd=REPO,
                                env={**os.environ, **pod_env}, stdout=log, stderr=log)

    fake.launcher = launch
    settings = {**fake.env, "DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN, "BOT_CHANNEL_URL": channel_url,
                "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc", "K8S_STOP_GRACE_SECONDS": "5",
                "TURN_URLS": "turn:127.0.0.1:3478?transport=tcp", "TURN_SHARED_SECRET": "t" * 32,
                "MAX_SESSION_SECONDS": "600", "LOG_LEVEL": "info", **env}
    with run_dispatcher(tmp_path, settings, port=port) as running:
        yield running


@pytest.fixture
def cold(tmp_path: Path, fake_k8s: FakeKubernetes) -> Iterator[SessionApi]:
    # The default grace (30 s), not the helper's 5 s: the claim is that a stopped pod's bot says goodbye on
    # SIGTERM, and at load its goodbye took longer than 5 s, so the fake's kubelet SIGKILLed it.
    for running in dispatcher(tmp_path, fake_k8s, RESERVE_MAX_IDLE="0", K8S_STOP_GRACE_SECONDS="30"):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


@pytest.fixture
def warm(tmp_path: Path, fake_k8s: FakeKubernetes) -> Iterator[SessionApi]:
    for running in dispatcher(tmp_path, fake_k8s, RESERVE_MIN_IDLE="1", RESERVE_BUFFER="0", RESERVE_BURST="0",
                              RESERVE_MAX_IDLE="1"):
        yield SessionApi(running, key=KEY, provider="k8s", deadline=DEADLINE)


def test_a_cold_session_runs_on_its_own_pod_whose_bot_answers_and_ends_with_it_a_lost_one_fails_and_quota_refuses(
        cold: SessionApi, fake_k8s: FakeKubernetes) -> None:
    """One dispatcher: a cold session from start to end; a start past the namespace's quota refused with
    a retry hint and no pod; a session whose pod's node dies under it (no goodbye) read as failed."""
    session_id = cold.started()
    name = f"vf-{session_id}"
    process = fake_k8s.processes[name]
    assert cold.answered_by(session_id) == f"{session_id}/{process.pid}"  # the pod's own process
    assert fake_k8s.envs[name]["VOICEFLEET_SESSION_ID"] == session_id
    reviewed = [c.json()["spec"]["token"] for c in fake_k8s.calls_to("POST", "/tokenreviews")]
    assert fake_k8s.token_of(name) in reviewed  # its hello was admitted on its pod's own token
    # What whoever may `get` pods reads: the session's id, no credential (the deployment's channel secret, the
    # API key, the TURN secret, a channel credential of the session's own: its prefix) and no session value.
    created = [c.json() for c in fake_k8s.calls_to("POST", "/pods")]
    held = json.dumps([fake_k8s.pods[name], fake_k8s.envs[name], created])
    assert session_id in held
    for secret in ("d" * 40, KEY, "t" * 32, f'"{PREFIX}.', "BOT_CHANNEL_TOKEN", "VOICEFLEET_ICE_CONFIG"):
        assert secret not in held, secret

    cold.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    cold.wait_for("the bot process gone", lambda: process.poll() is not None)
    assert process.returncode == 0  # SIGTERM: the bot said goodbye within the grace period
    cold.wait_for("the pod gone", lambda: name not in fake_k8s.pods)
    ended = cold.call("GET", f"/sessions/{session_id}").json()  # its pod gone, the session index answers
    assert ended["status"] == "ended", ended

    fake_k8s.quota = 0
    refused = cold.start(expected=(503,))
    error = refused.json()["error"]
    assert error["code"] == "k8s_capacity" and "at its quota of pods;" in error["message"]
    assert "retry-after" in refused.headers
    assert fake_k8s.pods == {}, "a start past the quota left a pod"

    fake_k8s.quota = None
    lost = cold.started()
    fake_k8s.lose(f"vf-{lost}")  # the node dies under the session: no goodbye
    cold.wait_for("the lost session failed",
                  lambda: cold.call("GET", f"/sessions/{lost}").json()["status"] == "failed")


def test_a_start_claims_the_reserves_idle_pod_instead_of_creating_one(
        warm: SessionApi, fake_k8s: FakeKubernetes) -> None:
    [idle] = warm.wait_for("an idle pod", lambda: [n for n in fake_k8s.created if n.startswith("vf-idle-")])
    warm.wait_for("its bot waiting on the channel", lambda: warm.idle_bots() == 1)  # admitted through its pod
    session_id = warm.started()
    labels = fake_k8s.pods[idle]["metadata"]["labels"]
    assert labels["voicefleet.io/session"] == session_id and labels["voicefleet.io/state"] == "session"
    assert f"vf-{session_id}" not in fake_k8s.created  # no cold create
    process = fake_k8s.processes[idle]
    assert warm.answered_by(session_id) == f"{session_id}/{process.pid}"  # the idle pod's bot serves it

    warm.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    warm.wait_for("the claimed pod's bot gone", lambda: process.poll() is not None)
    warm.wait_for("the claimed pod gone", lambda: idle not in fake_k8s.pods)  # deleted after its session

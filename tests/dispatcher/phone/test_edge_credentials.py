"""Each SIP edge's credentials are derived for its own control URL from the deployment's SIP_EDGE_SECRET
(dispatcher/phone/edge_secret.py): one edge's credential is never another's, nor the dispatcher's key to it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys

import pytest

from dispatcher.phone.edge_secret import EdgeSecret

SECRET = "deployment-secret-for-the-edge-tests-0123456789"
A, B = "http://10.0.0.5:5080", "http://10.0.0.6:5080"


def test_a_credential_is_the_documented_hmac_over_the_edge_s_url() -> None:
    """Recomputed here from docs/security.md's recipe, so a self-hosted edge's operator can derive the same."""
    key = hmac.new(SECRET.encode(), b"voicefleet sip edge credential v1", hashlib.sha256).digest()
    tag = base64.urlsafe_b64encode(hmac.new(key, A.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    name = base64.urlsafe_b64encode(A.encode()).rstrip(b"=").decode()
    assert EdgeSecret(SECRET).edge_credential(A) == f"vfe1.{name}.{tag}"
    assert EdgeSecret(SECRET).edge_credential(A.upper() + "/") == f"vfe1.{name}.{tag}"  # SIP_EDGE_URL's own form


def test_edge_a_s_credential_is_edge_a_s_alone() -> None:
    secret = EdgeSecret(SECRET)
    a = secret.edge_credential(A)
    assert secret.edge_of(a) == A and secret.edge_of(f"Bearer {a}") == A
    assert secret.edge_of(secret.edge_credential(B)) == B
    # A's tag under B's name, or the other way round: no edge at all
    forged = "vfe1." + a.split(".")[1] + "." + secret.edge_credential(B).split(".")[2]
    assert secret.edge_of(forged) is None
    assert EdgeSecret("another-deployment-secret-0123456789abcdef").edge_of(a) is None


@pytest.mark.parametrize("given", [None, "", SECRET, "vfe1..", "vfe1.!!!.x", "vfe1.YQ.x.y", "Bearer " + "x" * 40])
def test_anything_but_a_genuine_credential_is_no_edge(given: str | None) -> None:
    assert EdgeSecret(SECRET).edge_of(given) is None


def test_the_dispatcher_s_key_to_an_edge_speaks_for_no_edge_and_for_that_edge_alone() -> None:
    """What an edge's host holds to check the dispatcher (its control key) is not its credential, nor any
    other edge's control key: a compromised edge commands no other edge, nor passes for one."""
    secret = EdgeSecret(SECRET)
    control = secret.control_credential(A)
    assert secret.edge_of(control) is None
    assert control != secret.control_credential(B)
    assert secret.edge_credential(A) not in (control, SECRET) and SECRET not in control


def test_the_shared_secret_an_older_edge_presents_is_told_apart_with_the_way_out() -> None:
    secret = EdgeSecret(SECRET)
    assert secret.is_shared_secret(f"Bearer {SECRET}") and not secret.is_shared_secret(secret.edge_credential(A))
    assert "edge_credential_env" in secret.refusal(SECRET) and "docs/sip.md#edge-credentials" in secret.refusal(SECRET)


def test_the_command_prints_an_edge_s_two_values_from_the_secret_in_its_environment() -> None:
    env = {**os.environ, "SIP_EDGE_SECRET": SECRET}
    done = subprocess.run([sys.executable, "-m", "dispatcher.phone.edge_credentials", A], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    secret = EdgeSecret(SECRET)
    assert done.stdout == (f"SIP_EDGE_CONTROL_KEY={secret.control_credential(A)}\n"
                           f"SIP_EDGE_CREDENTIAL={secret.edge_credential(A)}\n")
    short = subprocess.run([sys.executable, "-m", "dispatcher.phone.edge_credentials", A],
                           env={**os.environ, "SIP_EDGE_SECRET": "short"}, capture_output=True, text=True,
                           timeout=60, check=False)
    assert short.returncode == 2 and "at least 32 characters" in short.stderr and not short.stdout

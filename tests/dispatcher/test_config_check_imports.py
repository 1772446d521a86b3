"""What the configuration check (dispatcher/factory.py `configuration_problems`, which `voicefleet config
check` runs, a stack's check among them) imports: the settings' parsers, not the web framework, the store's
client or the status page's machinery that a running dispatcher builds from them, nor a provider's HTTP client,
token verifier or metrics (each provider's settings live apart from its client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_A_CHECK = ("fastapi", "starlette", "redis", "dispatcher.store.client", "dispatcher.api.status_view")
# What the providers' clients import (aiohttp, google-auth's token verifiers, cryptography's AES-GCM for the
# store's messages, the metrics): a tenth of a second or more of a check that reads settings only.
CLIENTS = ("aiohttp", "google.auth", "cryptography", "prometheus_client")


@pytest.mark.parametrize("machines", ["ecs", "local"])
def test_the_check_imports_no_server_part(machines: str) -> None:
    script = (f"import json, sys\nfrom dispatcher.factory import configuration_problems\n"
              f"configuration_problems({{'MACHINES': {machines!r}, 'REDIS_URL': 'redis://:pw@store:6379/0'}})\n"
              f"print(json.dumps([name for name in {NOT_FOR_A_CHECK!r} if name in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("machines", ["ecs", "gce", "cloudrun", "aci", "k8s"])
def test_the_check_imports_no_provider_client(machines: str) -> None:
    script = (f"import json, sys\nfrom dispatcher.factory import configuration_problems\n"
              f"configuration_problems({{'MACHINES': {machines!r}, 'TRANSPORTS': 'daily'}})\n"
              f"print(json.dumps([name for name in {CLIENTS + NOT_FOR_A_CHECK!r} if name in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    assert json.loads(done.stdout) == []


# A stack's check reads the stack in the stacks' tool's process: the command's own process, which only
# hands the stack over, imports none of the reading (a twentieth of a second of CPU on every stack's check).
THE_READING = ("dispatcher.serving.config_report", "dispatcher.settings", "voicefleet_settings.catalogue")


def test_a_stack_checks_own_process_imports_none_of_the_reading() -> None:
    script = ("import json, subprocess, sys\nimport dispatcher.serving.config_command as command\n"
              "started = []\n"  # the stack tool's process is not this test's: its command line is kept instead
              "command.subprocess.run = lambda args, **kw: (started.append(args)\n"
              "                                             or subprocess.CompletedProcess(args, 0))\n"
              "code = command.main(['check', '--stack', 'aws-prod'])\n"
              f"print(json.dumps([code, len(started), [n for n in {THE_READING!r} if n in sys.modules]]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ) | {"PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    assert json.loads(done.stdout) == [0, 1, []]

"""The Azure TURN relay under mocks: TURN ports only, its identity reads its secrets before it
boots, and the boot script holds references, never the secret."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from policy import rules
from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner

TURN_SECRET = "SENTINEL-turn-shared-secret-0123456789"  # noqa: S105 - a test sentinel
KEY = "ssh-ed25519 " + "A" * 68 + " operator@laptop"
VM = "azure-native:compute:VirtualMachine"


def boot_script(run: Run) -> str:
    return base64.b64decode(unwrap(run.one(VM).inputs)["osProfile"]["customData"]).decode()


def test_the_relay_admits_turn_ports_only_and_leaves_on_udp_https_and_apt(relay: Run) -> None:
    group = next(r for r in relay.of_type("azure-native:network:NetworkSecurityGroup") if r.name.endswith("-turn"))
    rules_ = unwrap(group.inputs)["securityRules"]
    inbound = sorted((r["protocol"], r["destinationPortRange"]) for r in rules_
                     if r["direction"] == "Inbound" and r["access"] == "Allow")
    assert inbound == [("Tcp", "3478"), ("Udp", "3478"), ("Udp", "49152-65535")]
    outbound = sorted((r["protocol"], r["destinationPortRange"]) for r in rules_
                      if r["direction"] == "Outbound" and r["access"] == "Allow")
    assert outbound == [("Tcp", "443"), ("Tcp", "80"), ("Udp", "*")]
    assert not list(rules.azure_turn_ports(group.type, unwrap(group.inputs)))


def test_the_boot_script_reads_pinned_key_vault_versions_and_holds_no_secret(relay: Run) -> None:
    script = boot_script(relay)
    assert TURN_SECRET not in json.dumps([unwrap(r.inputs) for r in relay.registrations
                                          if r.type != "azure-native:keyvault:Secret"])
    assert "/secrets/turn-shared-secret/" in script
    assert 'static-auth-secret=%s\\n\' "$(fetch TURN_SHARED_SECRET)"' in script
    assert not list(rules.turn_not_open_relay(VM, unwrap(relay.one(VM).inputs)))


def test_the_relay_identity_may_read_its_secret_before_the_vm_exists(relay: Run) -> None:
    identity = relay.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-turn")
    grants = [r for r in relay.of_type("azure-native:authorization:RoleAssignment")
              if unwrap(r.inputs)["principalId"] == identity.outputs["principalId"]]
    secret = relay.one("azure-native:keyvault:Secret", "voicefleet-azure-test-turn-shared-secret")
    assert [unwrap(g.inputs)["scope"] for g in grants] == [secret.outputs["id"]]
    assert {g.urn for g in grants} <= set(relay.one(VM).dependencies)
    assert identity.outputs["clientId"] in boot_script(relay)


def test_the_dispatcher_hands_out_the_relays_urls_and_runs_webrtc_bots(relay: Run) -> None:
    (container,) = unwrap(relay.one("azure-native:app:ContainerApp").inputs)["template"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TURN_URLS"]["value"].startswith("turn:203.0.113.50:3478")
    assert env["TURN_SHARED_SECRET"] == {"name": "TURN_SHARED_SECRET", "secretRef": "turn-shared-secret"}
    assert "@sha256:" in env["ACI_BOT_IMAGE_WEBRTC"]["value"]


def test_a_managed_relay_without_a_key_is_refused_naming_the_key(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("azure", secrets={**SECRETS, **CHANNEL_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET},
              turn="managed")
    assert "voicefleet:turnSshPublicKey is required with turn: managed on azure" in str(caught.value)


def test_a_relay_security_group_opening_ssh_is_a_violation() -> None:
    props = {"tags": {"role": "turn"}, "securityRules": [
        {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "destinationPortRange": "22"}]}
    assert list(rules.azure_turn_ports("azure-native:network:NetworkSecurityGroup", props))


def test_an_open_relay_in_an_azure_vms_boot_script_is_a_violation(relay: Run) -> None:
    props = unwrap(relay.one(VM).inputs)
    opened = boot_script(relay).replace("use-auth-secret\n", "no-auth\n")
    props["osProfile"]["customData"] = base64.b64encode(opened.encode()).decode()
    found = list(rules.turn_not_open_relay(VM, props))
    assert any("use-auth-secret" in line for line in found) and any("no-auth" in line for line in found)


# curl stood in for: each call's argv and stdin recorded; the metadata service answers a token, Key Vault a value.
CURL = """curl() {
  printf '%s\\n' "$*" >> "$CALLS/argv"; cat >> "$CALLS/stdin"
  case "$*" in *Metadata:true*) echo '{"access_token": "TOKEN-SENTINEL"}';; *) echo '{"value": "read"}';; esac
}
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_relays_key_vault_token_reaches_curl_through_stdin_never_its_argv(relay: Run, tmp_path: Path) -> None:
    script = boot_script(relay)
    fetch = script[script.index("fetch() {"):script.index("\n}\n", script.index("fetch() {")) + 3]
    (name,) = [line.split(")", 1)[0].strip() for line in fetch.splitlines() if "uri='" in line]
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{CURL}{fetch}fetch {name}"], capture_output=True,
                         stdin=subprocess.DEVNULL, text=True, timeout=30, check=False,
                         env={"CALLS": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0 and ran.stdout == "read", ran.stderr
    assert "TOKEN-SENTINEL" not in (tmp_path / "argv").read_text()
    assert "Authorization: Bearer TOKEN-SENTINEL" in (tmp_path / "stdin").read_text()

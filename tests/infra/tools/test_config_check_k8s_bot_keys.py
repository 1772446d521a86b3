"""`voicefleet config check --stack` and the plan take a k8s stack whose bot keys are set as the check itself
asks (`pulumi config set --secret --path 'botSecrets.CARTESIA_API_KEY'`: `secure:` leaves in the stack file),
in either mode; and a k8s stack without its channel is refused by the stack key a user sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.tools import config_check, plan
from tests.infra.tools.secure_stack import ciphertext, secure_lines, write_stack

# Every secret the k8s stacks' headers document, each its own ciphertext.
K8S_SECRETS = ("k8sKubeconfig", "k8sRegistryPassword", "k8sStoreUrl", "storePassword", "dailyApiKey",
               "dispatcherApiKeys", "dispatcherAdminKeys", "storeMessageSecret", "botChannelToken")
DOCUMENTED = {"k8s-dev": [key for key in K8S_SECRETS if key != "storePassword"],
              "k8s-sandbox-dev": [key for key in K8S_SECRETS if key not in ("k8sRegistryPassword", "k8sStoreUrl")]}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "stacks").mkdir()


def with_bot_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str, *, left_out: str = "",
                  bot_keys: tuple[str, ...] = ("CARTESIA_API_KEY", "DEEPGRAM_API_KEY")) -> str:
    secrets = {key: ciphertext(f"{stack}.{key}") for key in DOCUMENTED[stack] if key != left_out}
    return write_stack(tmp_path / "stacks", monkeypatch, stack,
                       secure_lines(secrets, {"botSecrets": bot_keys} if bot_keys else {}))


@pytest.mark.parametrize("stack", ["k8s-dev", "k8s-sandbox-dev"])
def test_config_check_calls_a_k8s_stack_with_its_bot_keys_good(
        stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """It was refused: `botSecrets is not supported on k8s yet`."""
    with_bot_keys(tmp_path, monkeypatch, stack)
    assert config_check.main(["check", "--stack", stack]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert f"{stack}: configuration good" in out and "not supported" not in out, out


def test_the_plan_passes_it_and_shows_no_key_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with_bot_keys(tmp_path, monkeypatch, "k8s-dev")
    assert plan.main(["k8s-dev"]) == 0, capsys.readouterr().err
    said = capsys.readouterr()
    shown = said.out + said.err
    assert not [key for key in DOCUMENTED["k8s-dev"] if ciphertext(f"k8s-dev.{key}") in shown]
    assert ciphertext("botSecrets.CARTESIA_API_KEY") not in shown  # nor the bots' keys, in the plan or its notes
    assert "K8S_BOT_SECRET" in said.out and "bot-keys-" in said.out  # the pods name the Secret


def test_a_k8s_stack_that_turns_its_channel_off_is_refused_by_the_stack_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A team's own stack file, whose header does not document botChannelToken (so no placeholder stands in for
    it), and which sets `botChannel: false` over what k8s derives (stacks/config/derived.py): the refusal names
    the stack key a user sets, not the dispatcher's `BOT_CHANNEL_TOKEN and BOT_CHANNEL_URL`."""
    stack = with_bot_keys(tmp_path, monkeypatch, "k8s-dev", left_out="botChannelToken", bot_keys=())
    written = tmp_path / "stacks" / f"Pulumi.{stack}.yaml"
    written.write_text("".join(line for line in written.read_text().splitlines(keepends=True)
                               if not (line.startswith("#") and "botChannelToken" in line)
                               and not line.strip().startswith("voicefleet:botChannel:"))
                       + "  voicefleet:botChannel: false\n")
    assert config_check.main(["check", "--stack", stack]) == 1
    out = capsys.readouterr().out
    assert "botChannel must be true on k8s" in out and "pulumi config set botChannel true" in out, out
    assert "BOT_CHANNEL_TOKEN" not in out

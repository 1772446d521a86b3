"""The Azure stack writes the `aci` provider's environment (stacks/azure/machines.py, and the Azure entries of
stacks/config/dispatcher_keys.py): every name it writes is one `AciSettings.from_env` reads, and the
provider accepts the values the stack gives it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dispatcher.machines.aci.settings import AciSettings
from stacks.azure.machines import AciTarget, aci_environment
from stacks.config.dispatcher_keys import ENTRIES
from stacks.tools.mocks import Run
from tests.infra.azure.test_stack import env

# Read elsewhere: MACHINES picks the provider (dispatcher/machines/factory.py); AZURE_CLIENT_ID picks
# the dispatcher's user-assigned identity for its tokens (dispatcher/machines/aci/auth.py).
READ_ELSEWHERE = {"MACHINES", "AZURE_CLIENT_ID"}


class Reads(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values, self.read = dict(values), set[str]()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        self.read.add(str(name))
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def written_names() -> set[str]:
    """Every name `aci_environment` can write, with bot secrets and with the WebRTC bot, and the table's
    Azure-only settings (the subscription, the location, the bots' size)."""
    target = AciTarget(resource_group="g", stack="azure-test", dispatcher_client_id="c", bot_image="i",
                       bot_identity_id="b", registry="r", subnet_id="n", bot_settings={"LOG_FORMAT": "json"},
                       bot_secrets="DEEPGRAM_API_KEY=https://v/secrets/k/1", webrtc_image="w")
    return {*aci_environment(target), *(entry.setting for entry in ENTRIES if entry.clouds == ("azure",))}


def test_every_name_the_stack_writes_for_aci_is_one_the_provider_reads(full: Run) -> None:
    plain = {name: e["value"] for name, e in env(full).items() if "value" in e}
    assert written_names() <= set(plain)  # the fixture covers every optional name
    reads = Reads(plain)
    settings = AciSettings.from_env(reads)
    unread = written_names() - reads.read - READ_ELSEWHERE
    assert not unread, f"the stack writes names AciSettings.from_env never reads: {sorted(unread)}"
    # …and the values are ones it accepts as the stack meant them.
    assert settings.prefix == "vf-azure-test" and settings.registry_identity == plain["ACI_REGISTRY_IDENTITY"]
    assert settings.registry_server == plain["ACI_REGISTRY_SERVER"] and settings.subnet_id == plain["ACI_SUBNET_ID"]
    assert (settings.cpu, settings.memory_gb) == (float(plain["ACI_CPU"]), float(plain["ACI_MEMORY_GB"]))
    assert settings.bot_settings == {"LOG_FORMAT": "json"} and settings.webrtc_image == plain["ACI_BOT_IMAGE_WEBRTC"]
    assert set(settings.bot_secrets) == {"CARTESIA_API_KEY", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"}

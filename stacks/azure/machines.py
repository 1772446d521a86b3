"""The `aci` machines provider's environment, written once: the stack's resources onto the names
dispatcher/machines/aci/ reads (stacks/shared/contract.py ACI_ENV lists them; tests/infra/azure/test_machines.py
checks that `AciSettings.from_env` reads every one and accepts the stack's values). The subscription, the
location and the bots' size are their stack keys' settings (stacks/config/dispatcher_keys.py).

If the provider reads other names, change them here and in ACI_ENV, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from stacks.azure import naming
from stacks.config.releases import VARIABLE as RELEASES_VARIABLE


@dataclass(frozen=True)
class AciTarget:
    resource_group: pulumi.Input[str]
    stack: str
    dispatcher_client_id: pulumi.Input[str]
    bot_image: pulumi.Input[str]
    bot_identity_id: pulumi.Input[str]
    registry: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    bot_settings: Mapping[str, str] = field(default_factory=dict)  # the bots' plain settings
    bot_secrets: pulumi.Input[str] | None = None  # `ENV=<versioned secret URI>,…` (SecretStore.references)
    webrtc_image: pulumi.Input[str] | None = None  # with TURN: the SmallWebRTC bot, digest-pinned
    releases: pulumi.Input[str] | None = None  # RELEASES: each kept release's images by digest


def aci_environment(target: AciTarget) -> dict[str, pulumi.Input[str]]:
    return {
        "AZURE_RESOURCE_GROUP": target.resource_group,
        "AZURE_CLIENT_ID": target.dispatcher_client_id,
        "ACI_BOT_IMAGE": target.bot_image,
        "ACI_REGISTRY_IDENTITY": target.bot_identity_id,
        "ACI_REGISTRY_SERVER": target.registry,
        "ACI_SUBNET_ID": target.subnet_id,
        "ACI_GROUP_PREFIX": naming.container_group_prefix(target.stack),
        "ACI_BOT_SETTINGS": ",".join(f"{key}={value}" for key, value in sorted(target.bot_settings.items())),
        **({"ACI_BOT_SECRETS": target.bot_secrets} if target.bot_secrets is not None else {}),
        **({"ACI_BOT_IMAGE_WEBRTC": target.webrtc_image} if target.webrtc_image is not None else {}),
        **({RELEASES_VARIABLE: target.releases} if target.releases is not None else {}),
    }

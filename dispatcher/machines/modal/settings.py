"""`MACHINES=modal` settings: the team's Modal token, App and bot image, and the Sandbox's size.

The bot image is a Modal image id (`im-…`): the team builds its bot image once on Modal
(`modal.Image.from_registry(<their registry ref>)`, docs/providers.md#modal) and names the result, so a
create never triggers a build and every Sandbox of a deployment runs the same bytes. `BOT_GPU` is
the neutral name every provider takes (dispatcher/machines/gpu.py), sent as Modal's `gpu=` string.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.machines.call_timings import call_timings
from dispatcher.machines.gpu import GPUS, gpu_from_env
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError, require
from voicefleet_settings.model import STRING
from voicefleet_settings.read import entry, setting_float, setting_int, setting_text

DEFAULT_SERVER_URL = "https://api.modal.com"
# Where Modal publishes its OIDC keys (modal.com/docs/guide/oidc-integration): the discovery document's
# `jwks_uri`. MODAL_OIDC_DISCOVERY_URL overrides it for tests against a fake, as GCE_IDENTITY_CERTS_URL.
DEFAULT_OIDC_DISCOVERY_URL = "https://oidc.modal.com/.well-known/openid-configuration"
MAX_TIMEOUT_SECONDS = 24 * 3600  # a Sandbox's `timeout` (modal.com/docs/guide/sandbox)
# The bot image's own entrypoint (images/bot.Dockerfile): a Sandbox runs the command it is given.
# The catalogue's (`python -I ...`: isolated, so PYTHON* variables run nothing), the image's ENTRYPOINT too.
DEFAULT_BOT_COMMAND = tuple(shlex.split(entry("MODAL_BOT_COMMAND", STRING).default or ""))
# Modal publishes no Sandbox create rate; creates are paced client-side so a burst of starts (and the
# reserve's refills) does not meet RESOURCE_EXHAUSTED all at once. MODAL_CREATE_RATE/_BURST set yours.
DEFAULT_CREATE_RATE = Rate(per_second=5, burst=10)
_IMAGE_ID = re.compile(r"^im-[A-Za-z0-9]+$")


def modal_installed() -> None:
    """The `modal` client is the dependency group `modal`, which other providers' dispatchers go without."""
    if importlib.util.find_spec("modal") is None:
        raise SettingsError("MACHINES=modal needs the modal client: install the dependency group `modal` "
                            "(uv sync --group modal; docs/providers.md#modal)")


def gpu_setting(env: Mapping[str, str]) -> str | None:
    """`BOT_GPU` (the neutral name, dispatcher/machines/gpu.py) as Modal's `gpu=`: `TYPE` or
    `TYPE:COUNT` with `BOT_GPU_COUNT`; None for a CPU Sandbox."""
    request = gpu_from_env(env)
    if request is None:
        return None
    if request.gpu.modal is None:
        offered = [g.name for g in GPUS.values() if g.modal is not None]
        raise SettingsError(f"BOT_GPU={request.gpu.name}: Modal has none; it offers {', '.join(offered)}")
    return request.gpu.modal if request.count == 1 else f"{request.gpu.modal}:{request.count}"


@dataclass(frozen=True)
class ModalSettings:
    token_id: str
    token_secret: str
    app: str  # the Modal App the Sandboxes belong to (created if missing)
    image_id: str
    server_url: str = DEFAULT_SERVER_URL
    bot_command: tuple[str, ...] = DEFAULT_BOT_COMMAND
    cpu: float = 1.0  # physical cores (1 core = 2 vCPUs on Modal)
    memory_mb: int = 2048
    gpu: str | None = None
    grace_seconds: int = 300  # Sandbox timeout = max session + this (boot, goodbye)
    timeout: float = 30.0  # each call, the client's own retries included
    retry_deadline: float = 15.0  # RESOURCE_EXHAUSTED creates, retried with backoff
    poll_seconds: float = 1.0
    create_rate: Rate = DEFAULT_CREATE_RATE
    oidc_discovery_url: str = DEFAULT_OIDC_DISCOVERY_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModalSettings:
        required = require(env, ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_APP", "MODAL_BOT_IMAGE"), "modal")
        image_id = required["MODAL_BOT_IMAGE"]
        if not _IMAGE_ID.match(image_id):
            raise SettingsError(f"MODAL_BOT_IMAGE={image_id!r} is not a Modal image id (im-…): "
                                "build the bot image on Modal once and name it (docs/providers.md#modal)")
        server_url = setting_text(env, "MODAL_SERVER_URL")
        if not server_url.startswith(("https://", "http://")):
            raise SettingsError(f"MODAL_SERVER_URL={server_url!r} must be an http(s) URL")
        command = tuple(shlex.split(setting_text(env, "MODAL_BOT_COMMAND")))
        return cls(
            token_id=required["MODAL_TOKEN_ID"],
            token_secret=required["MODAL_TOKEN_SECRET"],
            app=required["MODAL_APP"],
            image_id=image_id,
            server_url=server_url,
            bot_command=command,
            cpu=setting_float(env, "MODAL_CPU"),
            memory_mb=setting_int(env, "MODAL_MEMORY_MB"),
            gpu=gpu_setting(env),
            grace_seconds=setting_int(env, "MODAL_GRACE_SECONDS"),
            **call_timings(env, "MODAL"),
            create_rate=Rate.from_env(env, "MODAL_CREATE"),
            oidc_discovery_url=setting_text(env, "MODAL_OIDC_DISCOVERY_URL"),
        )

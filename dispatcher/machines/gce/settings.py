"""`MACHINES=gce` settings (GceSettings), apart from the Compute Engine client (provider.py) so that
reading them, as `voicefleet config check` does, imports no HTTP client or token verifier (aiohttp,
google-auth, cryptography).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.channel.identity import identity_audience
from dispatcher.machines.call_timings import call_timings
from dispatcher.machines.gce import GRACE_SECONDS
from dispatcher.machines.gce.cell_settings import GceCell, gce_cells
from dispatcher.machines.gpu import GceGpu, gpu_from_env, gpu_problem
from dispatcher.outbound.ratelimit import Rate
from dispatcher.settings import SettingsError, api_endpoint, require
from voicefleet_settings.read import setting_int, setting_text

# Where Google publishes the keys its identity tokens are signed with (gce/identity.py checks them).
DEFAULT_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
DEFAULT_API_URL = "https://compute.googleapis.com/compute/v1"
# Compute API rate quotas are per project, enforced per minute, grouped by method, and vary by
# project (403 `rateLimitExceeded` past one: https://cloud.google.com/compute/api-quota); the page
# gives no fixed number for instances.insert. A create every 100 ms, counted once for the
# deployment (dispatcher/machines/creates.py), stays well inside them and leaves room for the
# other calls (get/list/delete); GCE_INSERT_RATE/_BURST set the project's own.
DEFAULT_INSERT_RATE = Rate(per_second=10, burst=20)
_PREFIX = re.compile(r"^[a-z][-a-z0-9]{0,30}$")  # instance names must start with a letter


@dataclass(frozen=True)
class GceSettings:
    project: str
    zone: str
    instance_template: str
    api_url: str = DEFAULT_API_URL
    prefix: str = "vf"
    grace_seconds: int = GRACE_SECONDS  # maxRunDuration = max session + this (boot, goodbye, shutdown)
    anonymous: bool = False  # GCE_AUTH=none: tests against a local fake only
    timeout: float = 15.0
    retry_deadline: float = 15.0
    poll_seconds: float = 1.0
    insert_rate: Rate = DEFAULT_INSERT_RATE
    # Bots' instance identity tokens (gce/identity.py): the audience they name, the channel's URL
    # (BOT_IDENTITY_AUDIENCE, else BOT_CHANNEL_URL), and where Google publishes its signing keys.
    identity_audience: str | None = None
    identity_certs_url: str = DEFAULT_CERTS_URL
    gpu: GceGpu | None = None  # BOT_GPU: attached (N1) or the machine type's own (G2, A2, A3)
    gpu_count: int = 1
    # GCE_CELLS: the GCP projects VMs spread over (gce/cells.py); empty: GCE_PROJECT alone.
    cells: tuple[GceCell, ...] = ()
    # A cell's: the deployment's own project (`projects/P/`), whose templates (a release's, as the
    # stack names them) are the cell's project's templates of the same name.
    same_name_from: str = ""

    @property
    def template_path(self) -> str:
        return self.path_of(self.instance_template)

    def path_of(self, template: str) -> str:
        """A bare template name is global in this project; a path (regional template) is kept (one
        in the deployment's own project, for a cell: the template of that path in the cell's project)."""
        if "/" in template:
            if self.same_name_from and template.startswith(self.same_name_from):
                return f"projects/{self.project}/" + template.removeprefix(self.same_name_from)
            return template
        return f"projects/{self.project}/global/instanceTemplates/{template}"

    def for_cell(self, cell: GceCell) -> GceSettings:
        """One cell's settings: its project, and its own zone and template where it names them (else
        the deployment's template's name, or path, in the cell's project: each project has its own)."""
        return replace(self, project=cell.project, zone=cell.zone or self.zone,
                       instance_template=cell.instance_template or self.instance_template, cells=(),
                       same_name_from=f"projects/{self.project}/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GceSettings:
        required = require(env, ("GCE_PROJECT", "GCE_ZONE", "GCE_INSTANCE_TEMPLATE"), "gce")
        prefix = setting_text(env, "GCE_INSTANCE_PREFIX")
        if not _PREFIX.match(prefix):
            raise SettingsError(f"GCE_INSTANCE_PREFIX={prefix!r} must be a lowercase letter then [-a-z0-9], ≤31")
        api_url, auth = api_endpoint(env, "GCE_API_URL", DEFAULT_API_URL, "GCE_AUTH")
        return cls(
            project=required["GCE_PROJECT"],
            zone=required["GCE_ZONE"],
            instance_template=required["GCE_INSTANCE_TEMPLATE"],
            api_url=api_url,
            prefix=prefix,
            grace_seconds=setting_int(env, "GCE_GRACE_SECONDS"),
            anonymous=auth == "none",
            **call_timings(env, "GCE"),
            insert_rate=Rate.from_env(env, "GCE_INSERT"),
            identity_audience=identity_audience(env),
            identity_certs_url=setting_text(env, "GCE_IDENTITY_CERTS_URL"),
            **_gpu(env),
            cells=gce_cells(setting_text(env, "GCE_CELLS"), required["GCE_ZONE"]),
        )


def _gpu(env: Mapping[str, str]) -> dict[str, Any]:
    """BOT_GPU on Compute Engine: the template's machine type (GCE_MACHINE_TYPE, which the stack sets
    from botMachineType) must be of the family the GPU attaches to or comes with."""
    request = gpu_from_env(env)
    if request is None:
        return {}
    gpu_problem("gce", env)
    gpu = request.gpu.gce
    assert gpu is not None  # gpu_problem refused a GPU without a Compute Engine column
    machine_type = setting_text(env, "GCE_MACHINE_TYPE")
    if not machine_type.startswith(f"{gpu.family}-"):
        raise SettingsError(f"BOT_GPU={request.gpu.name} on Compute Engine needs a {gpu.family}-* machine type: "
                            f"set GCE_MACHINE_TYPE (the instance template's, botMachineType), got {machine_type!r}")
    if not gpu.attached and request.count != 1:
        raise SettingsError(f"BOT_GPU_COUNT={request.count}: a {gpu.family}-* machine type comes with its own "
                            f"GPUs; pick the {gpu.family} type with that many instead")
    return {"gpu": gpu, "gpu_count": request.count}

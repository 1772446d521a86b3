"""`BOT_GPU`: the bots' GPU as one neutral name, and what each provider calls it.

One table, one row per GPU, one column per provider (None: that provider has no such GPU). A
provider reads its own column; a provider with no column at all (ECS Fargate, Fly, local) refuses
`BOT_GPU` at start-up (`gpu_problem`, called by dispatcher/factory.py's preflight). It lives with
the machines, not in dispatcher/settings/: the foundation cannot import the providers' names. The
catalogue lists the neutral names as BOT_GPU's choices, one per row here (a test holds the two equal).

Sources: Compute Engine's accelerator types and the machine families they attach to or come with
(https://cloud.google.com/compute/docs/gpus): a T4 is attached to an N1 VM (`guestAccelerators`),
an L4 comes with a G2 machine type, an A100 with A2, an H100 with A3; every VM with a GPU needs
`scheduling.onHostMaintenance: TERMINATE` (GPUs do not live-migrate). Cerebrium's `compute` names
(https://docs.cerebrium.ai/cerebrium/hardware/cpu-and-memory). Modal's `gpu=` strings
(https://modal.com/docs/guide/gpu; `"T4:2"` asks for two).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_choice, setting_int


@dataclass(frozen=True)
class GceGpu:
    accelerator: str  # the zone's acceleratorType name
    family: str  # the machine family it attaches to (n1) or comes with (g2, a2, a3)
    attached: bool  # True: the insert attaches it (guestAccelerators); False: the machine type has it


@dataclass(frozen=True)
class Gpu:
    name: str  # the neutral name BOT_GPU takes
    gce: GceGpu | None
    cerebrium: str | None  # cerebrium.toml [cerebrium.hardware] compute
    modal: str | None  # Modal's gpu= type


GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("nvidia-t4", GceGpu("nvidia-tesla-t4", "n1", attached=True), "TURING_T4", "T4"),
    Gpu("nvidia-l4", GceGpu("nvidia-l4", "g2", attached=False), "ADA_L4", "L4"),
    # Cerebrium's A10 and Modal's A10G (AWS's variant of the A10) are one class of card, not one part.
    Gpu("nvidia-a10", None, "AMPERE_A10", "A10G"),
    Gpu("nvidia-l40s", None, "ADA_L40", "L40S"),
    Gpu("nvidia-a100-40gb", GceGpu("nvidia-tesla-a100", "a2", attached=False), "AMPERE_A100", "A100-40GB"),
    Gpu("nvidia-h100", GceGpu("nvidia-h100-80gb", "a3", attached=False), "HOPPER_H100", "H100"),
)}
# The providers with a column; any other refuses BOT_GPU at start-up.
GPU_PROVIDERS = ("gce", "cerebrium", "modal")


@dataclass(frozen=True)
class GpuRequest:
    gpu: Gpu
    count: int  # BOT_GPU_COUNT: attached GPUs (Compute Engine N1, Modal); a G2/A2/A3 type fixes its own


def gpu_from_env(env: Mapping[str, str]) -> GpuRequest | None:
    """BOT_GPU (and BOT_GPU_COUNT), or None when the bots run on CPU only."""
    name = setting_choice(env, "BOT_GPU")
    return GpuRequest(GPUS[name], setting_int(env, "BOT_GPU_COUNT")) if name else None


def gpu_problem(machines: str, env: Mapping[str, str]) -> None:
    """Raise when BOT_GPU names a GPU `machines` cannot give its bots (one line naming the way out)."""
    request = gpu_from_env(env)
    if request is None:
        return
    if machines not in GPU_PROVIDERS:
        raise SettingsError(f"BOT_GPU={request.gpu.name}: MACHINES={machines} runs no GPU; use one of "
                            f"{', '.join(GPU_PROVIDERS)}, or unset BOT_GPU")
    if getattr(request.gpu, machines) is None:
        offered = [g.name for g in GPUS.values() if getattr(g, machines) is not None]
        raise SettingsError(f"BOT_GPU={request.gpu.name}: MACHINES={machines} has none; it offers "
                            f"{', '.join(offered)}")

"""Bake, at image build time, everything the bot would otherwise load from the network at run time.

The bot image runs with no route to model hubs (and `HF_HUB_OFFLINE=1` etc.), so a first-use download
would either fail or stall a session. The bake stage of images/bot.Dockerfile runs this script:

    python bake_models.py verify-vad                       # runtime venv: Silero loads from the wheel
    python bake_models.py nltk --dest /opt/models/nltk_data    # runtime venv: NLTK data, if NLTK is there
    python bake_models.py torch-hub --dest /opt/models/torch/hub REPO=MODEL ...   # bake-only torch venv

It is a plain script (stdlib only at import time) so the build stage can run it with any interpreter,
and the tests load it by path. Each step prints one line saying what it did, which ends up in the
build log.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Pipecat ships Silero VAD as ONNX inside the wheel (no torch, no download); this is where.
SILERO_PACKAGE = "pipecat.audio.vad.data"
SILERO_FILE = "silero_vad.onnx"
NLTK_PACKAGES = ("punkt_tab",)


class BakeError(RuntimeError):
    """A bake step could not produce what the runtime stage expects: fail the image build."""


def verify_vad(sample_rate: int = 16000) -> str:
    """Load Silero from the installed wheel and run one inference on silence.

    Loading the model in the build is the cheapest proof that the runtime closure (onnxruntime, numpy,
    the bundled .onnx) is complete for this platform, which matters for multi-arch builds.
    """
    from importlib import resources

    model = resources.files(SILERO_PACKAGE).joinpath(SILERO_FILE)
    if not model.is_file():
        raise BakeError(f"{SILERO_PACKAGE}/{SILERO_FILE} is missing from the installed pipecat-ai")
    import numpy as np
    from loguru import logger
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    # voice_confidence() logs inference errors and returns 0.0, which looks like "silence": collect
    # error records so a broken model fails the build instead of passing as a quiet one.
    errors: list[str] = []
    sink = logger.add(lambda message: errors.append(str(message)), level="ERROR")
    try:
        started = time.perf_counter()
        analyzer = SileroVADAnalyzer()
        analyzer.set_sample_rate(sample_rate)
        silence = bytes(analyzer.num_frames_required() * 2)  # int16 mono
        confidence = float(np.asarray(analyzer.voice_confidence(silence)).item())  # a (1, 1) array
        elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        logger.remove(sink)
    if errors:
        raise BakeError(f"Silero VAD failed to run: {errors[0].strip()}")
    if not 0.0 <= confidence < 0.5:
        raise BakeError(f"Silero VAD gave confidence {confidence:.3f} for silence: the model is not sane")
    return f"silero vad: {model} loads and runs ({elapsed_ms:.0f} ms, silence confidence {confidence:.3f})"


Downloader = Callable[[str, Path], None]


def _nltk_download(package: str, dest: Path) -> None:
    import nltk  # only when the runtime closure has it (checked by the caller)

    if not nltk.download(package, download_dir=str(dest), quiet=True, raise_on_error=True):
        raise BakeError(f"nltk.download({package!r}) reported failure")


def bake_nltk(
    dest: Path,
    packages: Sequence[str] = NLTK_PACKAGES,
    *,
    nltk_installed: Callable[[], bool] = lambda: importlib.util.find_spec("nltk") is not None,
    download: Downloader = _nltk_download,
) -> str:
    """Download NLTK data into `dest` (the runtime's NLTK_DATA) if the runtime closure imports NLTK.

    Pipecat 1.7 fetched `punkt_tab` on first use; pipecat-ai 1.14 splits sentences with
    sentencex and no longer depends on NLTK. Running this step with the runtime venv's interpreter
    keeps the bake honest either way: data is baked exactly when something in the image can read it,
    and never installs NLTK just to ship data nobody loads. `dest` always exists so the runtime stage
    can COPY it unconditionally.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if not nltk_installed():
        return f"nltk: not in the runtime closure, nothing to bake ({dest} left empty)"
    for package in packages:
        download(package, dest)
        if not any(dest.rglob(f"{package}*")):
            raise BakeError(f"nltk package {package!r} was not written under {dest}")
    return f"nltk: baked {', '.join(packages)} into {dest}"


@dataclass(frozen=True)
class HubModel:
    repo: str  # owner/name[:ref], as torch.hub.load takes it
    model: str  # entry point in the repo's hubconf.py


def parse_hub_spec(spec: str) -> HubModel:
    """`owner/name[:ref]=entrypoint` → HubModel; anything else is a build-time error."""
    repo, sep, model = spec.rpartition("=")
    owner, slash, name = repo.partition("/")
    if not sep or not model or not slash or not owner or not name.split(":")[0]:
        raise BakeError(f"bad torch hub spec {spec!r}: expected owner/name[:ref]=entrypoint")
    return HubModel(repo=repo, model=model)


def bake_torch_hub(dest: Path, models: Sequence[HubModel]) -> str:
    """Fill a torch.hub cache (repo checkout + checkpoints) under `dest`.

    Runs in a bake-only venv that has the CPU torch wheel; the runtime stage copies `dest` only, so
    torch never reaches the runtime image. No pipeline of ours uses a hub model today (Silero comes
    from the pipecat wheel), so the Dockerfile runs this only when TORCH_HUB_MODELS is set.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if not models:
        return "torch hub: no models requested"
    try:
        torch = importlib.import_module("torch")
    except ModuleNotFoundError as exc:
        raise BakeError("torch hub models requested but torch is not installed in this interpreter") from exc
    torch.hub.set_dir(str(dest))
    for hub_model in models:
        torch.hub.load(hub_model.repo, hub_model.model, trust_repo=True)
    return f"torch hub: baked {', '.join(m.repo + '=' + m.model for m in models)} into {dest}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("verify-vad", help="load Silero VAD from the pipecat-ai wheel and run it once")
    nltk_step = steps.add_parser("nltk", help="bake NLTK data if the runtime closure has NLTK")
    nltk_step.add_argument("--dest", type=Path, required=True)
    nltk_step.add_argument("--package", action="append", dest="packages")
    hub_step = steps.add_parser("torch-hub", help="fill a torch.hub cache (bake-only torch venv)")
    hub_step.add_argument("--dest", type=Path, required=True)
    hub_step.add_argument("models", nargs="*", metavar="REPO=MODEL")
    args = parser.parse_args(argv)
    try:
        if args.step == "verify-vad":
            print(verify_vad())
        elif args.step == "nltk":
            print(bake_nltk(args.dest, tuple(args.packages or NLTK_PACKAGES)))
        else:
            print(bake_torch_hub(args.dest, [parse_hub_spec(spec) for spec in args.models]))
    except BakeError as exc:
        print(f"bake failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

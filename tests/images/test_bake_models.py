"""images/bake_models.py, the bot image's bake step, run here with the dev venv's packages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.images.closure import REPO


@pytest.fixture(scope="module")
def bake() -> ModuleType:
    # Loaded by path: the build stage runs it as a script, and `images/__init__.py` is the Pulumi
    # component, which a bake step must not need.
    spec = importlib.util.spec_from_file_location("bake_models", REPO / "images" / "bake_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_vad_verification_loads_silero_from_the_pipecat_wheel(bake: ModuleType) -> None:
    report = bake.verify_vad()
    assert "pipecat/audio/vad/data/silero_vad.onnx loads and runs" in report


def test_vad_verification_fails_the_build_when_inference_errors(
    bake: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecat.audio.vad import silero

    def broken(self: object, x: object, sr: int) -> object:
        raise RuntimeError("onnxruntime: no kernel for this platform")

    # Pipecat logs the error and answers 0.0, which must not pass as "silence".
    monkeypatch.setattr(silero.SileroOnnxModel, "__call__", broken)
    with pytest.raises(bake.BakeError, match="failed to run"):
        bake.verify_vad()


def test_nltk_step_bakes_nothing_when_the_runtime_closure_has_no_nltk(bake: ModuleType, tmp_path: Path) -> None:
    calls: list[str] = []
    report = bake.bake_nltk(
        tmp_path / "nltk_data", nltk_installed=lambda: False, download=lambda pkg, dest: calls.append(pkg)
    )
    assert calls == [] and "nothing to bake" in report
    assert (tmp_path / "nltk_data").is_dir()  # the runtime stage copies it unconditionally


def test_nltk_step_downloads_each_package_into_the_nltk_data_dir(bake: ModuleType, tmp_path: Path) -> None:
    def fake_download(package: str, dest: Path) -> None:
        (dest / "tokenizers" / package).mkdir(parents=True)

    report = bake.bake_nltk(tmp_path, ("punkt_tab",), nltk_installed=lambda: True, download=fake_download)
    assert (tmp_path / "tokenizers" / "punkt_tab").is_dir() and "punkt_tab" in report


def test_nltk_step_fails_when_a_download_writes_nothing(bake: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(bake.BakeError, match="punkt_tab"):
        bake.bake_nltk(tmp_path, ("punkt_tab",), nltk_installed=lambda: True, download=lambda pkg, dest: None)


@pytest.mark.parametrize(
    ("spec", "repo", "model"),
    [("snakers4/silero-vad=silero_vad", "snakers4/silero-vad", "silero_vad"), ("o/r:v5.1=m", "o/r:v5.1", "m")],
)
def test_hub_spec_names_a_repo_with_optional_ref_and_an_entrypoint(
    bake: ModuleType, spec: str, repo: str, model: str
) -> None:
    assert bake.parse_hub_spec(spec) == bake.HubModel(repo=repo, model=model)


@pytest.mark.parametrize("spec", ["silero_vad", "snakers4/silero-vad", "snakers4/=m", "/r=m", "o/r="])
def test_hub_spec_without_repo_or_entrypoint_is_refused(bake: ModuleType, spec: str) -> None:
    with pytest.raises(bake.BakeError):
        bake.parse_hub_spec(spec)


def test_torch_hub_step_with_models_but_no_torch_fails_the_build(
    bake: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch → ModuleNotFoundError
    assert bake.main(["torch-hub", "--dest", str(tmp_path), "o/r=m"]) == 1


def test_torch_hub_step_without_models_only_creates_the_cache_dir(bake: ModuleType, tmp_path: Path) -> None:
    assert bake.main(["torch-hub", "--dest", str(tmp_path / "hub")]) == 0
    assert (tmp_path / "hub").is_dir() and list((tmp_path / "hub").iterdir()) == []

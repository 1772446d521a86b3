"""The bot image's size predicted from a project's uv.lock (its wheels' recorded sizes), and the
plan's warning when it is over the stack's budget, naming what makes it big and how to slim it."""

from __future__ import annotations

from pathlib import Path

from images.project_imports import imported_modules
from images.size_prediction import DAILY_LEAVES_OUT, INSTALLED_PER_WHEEL_BYTE, MB, predict

ROOT = Path(__file__).resolve().parents[2]


def wheel(name: str, tags: str, size: int) -> str:
    return f'{{ url = "https://files.example/{name}-1.0-{tags}.whl", hash = "sha256:00", size = {size} }}'


def lock(tmp_path: Path, *packages: tuple[str, list[str]], dev: tuple[str, ...] = ()) -> Path:
    """A uv.lock whose project depends on every package but those named in `dev` (its dev group's)."""
    separator = ",\n    "
    registry = '{ registry = "https://pypi.org/simple" }'
    tables = "".join(f'\n[[package]]\nname = "{name}"\nversion = "1.0"\nsource = {registry}\n'
                     f'wheels = [\n    {separator.join(wheels)},\n]\n' for name, wheels in packages)
    runtime = ", ".join(f'{{ name = "{name}" }}' for name, _ in packages if name not in dev)
    dev_group = ", ".join(f'{{ name = "{name}" }}' for name in dev)
    path = tmp_path / "uv.lock"
    path.write_text('version = 1\n\n[[package]]\nname = "my-bot"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
                    f'dependencies = [{runtime}]\n\n[package.dev-dependencies]\ndev = [{dev_group}]\n' + tables)
    return path


def test_the_platforms_wheel_counts_and_other_platforms_and_left_out_packages_do_not(tmp_path: Path) -> None:
    path = lock(tmp_path,
                ("torch", [wheel("torch", "cp311-cp311-manylinux_2_28_x86_64", 800 * MB),
                           wheel("torch", "cp311-cp311-win_amd64", 200 * MB)]),
                ("nvidia-cudnn-cu12", [wheel("nvidia_cudnn_cu12", "py3-none-manylinux_2_27_x86_64", 600 * MB)]),
                ("pywin32", [wheel("pywin32", "cp311-cp311-win_amd64", 9 * MB)]),
                ("aiortc", [wheel("aiortc", "cp39-abi3-manylinux_2_17_x86_64", 2 * MB)]),
                ("six", [wheel("six", "py2.py3-none-any", 1 * MB)]))
    found = predict(path, leave_out=DAILY_LEAVES_OUT)
    assert round(found.wheels_mb) == 800 + 600 + 1
    assert round(found.installed_mb) == round(1401 * INSTALLED_PER_WHEEL_BYTE)
    assert [name for name, _ in found.largest] == ["torch", "nvidia-cudnn-cu12", "six"]
    assert "download.pytorch.org/whl/cpu" in found.advice()  # CPU-only torch keeps behaviour
    arm = predict(path, leave_out=DAILY_LEAVES_OUT, platform="linux/arm64")
    assert [name for name, _ in arm.largest] == ["six"]


def test_the_default_bot_project_is_within_the_default_budget() -> None:
    assert predict(ROOT / "examples" / "parrot" / "uv.lock",
                   leave_out=("llvmlite", "numba", "opencv-python-headless", "resampy", *DAILY_LEAVES_OUT)
                   ).installed_mb < 400


def test_only_what_uv_sync_no_dev_installs_counts(tmp_path: Path) -> None:
    """The image installs the project's dependencies without its dev group (images/install_project.sh):
    a dev group's tools, or a package only an extra nobody asks for brings, are not in the image."""
    registry = '{ registry = "https://pypi.org/simple" }'
    extra_only = (f'\n[[package]]\nname = "needs-extra"\nversion = "1.0"\nsource = {registry}\n'
                  f'wheels = [\n    {wheel("needs_extra", "py3-none-any", 1 * MB)},\n]\n'
                  '\n[package.optional-dependencies]\nfast = [{ name = "fast-lib" }]\n'
                  f'\n[[package]]\nname = "fast-lib"\nversion = "1.0"\nsource = {registry}\n'
                  f'wheels = [\n    {wheel("fast_lib", "py3-none-any", 50 * MB)},\n]\n')
    path = lock(tmp_path, ("six", [wheel("six", "py3-none-any", 1 * MB)]),
                ("mypy", [wheel("mypy", "cp311-cp311-manylinux_2_28_x86_64", 12 * MB)]),
                ("ruff", [wheel("ruff", "py3-none-manylinux_2_17_x86_64", 11 * MB)]), dev=("mypy", "ruff"))
    runtime = 'dependencies = [{ name = "six" }, { name = "needs-extra" }]'
    path.write_text(path.read_text().replace('dependencies = [{ name = "six" }]', runtime) + extra_only)
    assert {name for name, _ in predict(path).largest} == {"needs-extra", "six"}
    asked = '{ name = "needs-extra", extra = ["fast"] }'
    path.write_text(path.read_text().replace('{ name = "needs-extra" }', asked))
    assert {name for name, _ in predict(path).largest} == {"fast-lib", "needs-extra", "six"}


def dependency(name: str) -> str:
    return '{ name = "' + name + '" }'


def audio_lock(tmp_path: Path) -> Path:
    """A lock in uv's shape where Pipecat and librosa both depend on numba (librosa jit-compiles with it)."""
    registry = '{ registry = "https://pypi.org/simple" }'
    big = wheel("numba", "cp311-cp311-manylinux_2_28_x86_64", 100 * MB)
    tables = "".join(f'\n[[package]]\nname = "{name}"\nversion = "1.0"\nsource = {registry}\n'
                     f'dependencies = [{", ".join(map(dependency, deps))}]\n'
                     f'wheels = [\n    {big if name == "numba" else wheel(name, "py3-none-any", MB)},\n]\n'
                     for name, deps in (("pipecat-ai", ["numba"]), ("librosa", ["numba"]), ("numba", [])))
    path = tmp_path / "uv.lock"
    path.write_text('version = 1\n\n[[package]]\nname = "my-bot"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
                    'dependencies = [{ name = "pipecat-ai" }, { name = "librosa" }]\n' + tables)
    return path


def test_a_package_that_a_package_the_bot_imports_depends_on_is_never_advised_out(tmp_path: Path) -> None:
    path = audio_lock(tmp_path)
    (tmp_path / "bot.py").write_text("import librosa\nimport pipecat\n")
    advice = predict(path, imports=imported_modules(tmp_path)).advice()
    assert "numba: kept, librosa needs it and the bot imports that (bot.py:1: `librosa`)" in advice, advice
    # Pipecat's own numba is what exclude-packages trims: a bot importing Pipecat alone is advised it
    (tmp_path / "bot.py").write_text("import pipecat\n")
    advice = predict(path, imports=imported_modules(tmp_path)).advice()
    assert "numba: used only by the resampy resampler" in advice, advice

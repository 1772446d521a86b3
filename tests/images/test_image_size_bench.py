"""bench/image_size.py attributes site-packages bytes to the right distributions."""

from __future__ import annotations

from pathlib import Path

from bench.image_size import MB, measure
from tests.images.closure import without_exclusions


def _install(site: Path, dist: str, files: dict[str, int]) -> None:
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    for rel, size in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * size)
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files) + f"{info.name}/RECORD,,\n")


def test_sizes_count_each_distributions_files_and_the_bytecode_compiled_for_them(tmp_path: Path) -> None:
    _install(tmp_path, "heavy_pkg", {"heavy/__init__.py": 1000, "heavy/lib.so": 3 * MB})
    _install(tmp_path, "light", {"light.py": 10})
    (tmp_path / "heavy" / "__pycache__").mkdir()
    (tmp_path / "heavy" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"p" * 500)
    (tmp_path / "stray.bin").write_bytes(b"s" * 2000)

    sizes = measure(tmp_path)

    assert list(sizes.by_package_mb)[0] == "heavy-pkg"
    heavy_record = len("heavy/__init__.py,,\nheavy/lib.so,,\nheavy_pkg-1.0.dist-info/RECORD,,\n")
    assert sizes.by_package_mb["heavy-pkg"] * MB == 3 * MB + 1000 + 500 + heavy_record
    assert sizes.by_package_mb["(unattributed)"] * MB == 2000
    assert sizes.bytecode_mb * MB == 500
    assert round(sum(sizes.by_package_mb.values()) * MB) == round(sizes.total_mb * MB)


def test_unpruned_command_drops_every_exclusion_and_keeps_the_rest() -> None:
    argv = ["uv", "sync", "--frozen", "--no-install-package", "numba", "--group", "bot", "--no-install-package", "av"]
    assert without_exclusions(argv) == ["uv", "sync", "--frozen", "--group", "bot"]

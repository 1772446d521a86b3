"""The model of pulumi-docker-build v0.0.22's rebuild decision (images/docker_build_model.py) behaves as
its own tests say it does (provider/internal/context_test.go), and reproduces why a bot.py edit was
invisible to it: the main context's allow-list `.dockerignore` also filters the bot project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from images.docker_build_model import context_hash, diff, export_string, image_context_hash
from images.dockerignore import ignore_file_patterns, walk

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """The repository's own .dockerignore and bot Dockerfile beside a copy of the parrot example."""
    repo = tmp_path / "repo"
    _tree(repo, {"images/bot.Dockerfile": (ROOT / "images/bot.Dockerfile").read_text(), "bot/x.py": "host\n",
                 ".dockerignore": (ROOT / ".dockerignore").read_text()})
    shutil.copytree(ROOT / "examples/parrot", repo / "project")
    (repo / "infra").mkdir()
    return repo


def _bot_hash(repo: Path) -> str:
    return context_hash("..", "../images/bot.Dockerfile", {"bot-project": "../project"}, repo / "infra")


def test_the_allow_list_keeps_only_the_lock_and_pyproject_of_a_bot_project() -> None:
    kept: list[str] = []
    walk(ROOT / "examples/parrot", ignore_file_patterns(ROOT / ".dockerignore"), lambda path, _: kept.append(path))
    assert kept == ["pyproject.toml", "uv.lock"]


def test_docker_builds_hash_misses_a_bot_py_edit_and_sees_a_lock_edit(repository: Path) -> None:
    before = _bot_hash(repository)
    (repository / "project/bot.py").write_text("# edited\n")
    assert _bot_hash(repository) == before
    (repository / "project/uv.lock").write_text("# edited\n")
    assert _bot_hash(repository) != before


def test_a_dockerfile_specific_ignore_file_wins_and_filters_the_named_context_too(repository: Path) -> None:
    """getIgnorePatterns (context.go:305-337). BuildKit reads it for the main context only, so it cannot
    let a project's files into this hash without opening the repository root to the same names."""
    (repository / "images/bot.Dockerfile.dockerignore").write_text("*\n!bot.py\n")
    before = _bot_hash(repository)
    (repository / "bot/x.py").write_text("changed\n")  # the root .dockerignore no longer applies
    assert _bot_hash(repository) == before
    (repository / "project/bot.py").write_text("# edited\n")
    assert _bot_hash(repository) != before


def test_an_exception_with_a_wildcard_is_honoured(tmp_path: Path) -> None:
    """context_test.go:138-179 (TestHashIgnoresWildcards): `!foo/*/bar` inside an excluded folder."""
    def hashed(edit: str) -> str:
        files = {"Dockerfile": "FROM scratch\n", ".dockerignore": "foo\n!foo/*/bar\n", "foo/a/bar": "kept\n",
                 "foo/a/baz": "ignored\n"}
        root = _tree(tmp_path / (edit.replace("/", "-") or "base"), files)
        if edit:
            (root / edit).write_text("modified\n")
        return context_hash(".", "Dockerfile", {}, root)

    assert hashed("foo/a/baz") == hashed("")
    assert hashed("foo/a/bar") != hashed("")


def test_renames_modes_and_the_dockerfiles_content_count_but_not_its_place(tmp_path: Path) -> None:
    """context_test.go:236-280 (TestHashIgnoresDockerfileOutsideDirMove, RenamingMatters, FilemodeMatters)."""
    app = _tree(tmp_path / "app", {"main.py": "print()\n"})
    _tree(tmp_path, {"one.Dockerfile": "FROM a\n", "two.Dockerfile": "FROM a\n", "three.Dockerfile": "FROM b\n"})
    first = context_hash("app", "one.Dockerfile", {}, tmp_path)
    assert context_hash("app", "two.Dockerfile", {}, tmp_path) == first
    assert context_hash("app", "three.Dockerfile", {}, tmp_path) != first
    (app / "main.py").chmod(0o755)
    moded = context_hash("app", "one.Dockerfile", {}, tmp_path)
    (app / "main.py").rename(app / "other.py")
    assert len({first, moded, context_hash("app", "one.Dockerfile", {}, tmp_path)}) == 3


def _state(inputs: dict[str, object], cwd: Path) -> dict[str, object]:
    return {**inputs, "contextHash": image_context_hash(inputs, cwd)}


def test_diff_ignores_a_new_registry_password_and_names_a_new_address(tmp_path: Path) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM scratch\n"})
    old = {"context": {"location": "."}, "dockerfile": {"location": "Dockerfile"}, "push": True,
           "registries": [{"address": "r.example", "username": "u", "password": "one"}]}
    state = _state(old, tmp_path)
    assert diff(state, old, tmp_path) == set()
    new_password = [{"address": "r.example", "username": "u", "password": "two"}]
    assert diff(state, {**old, "registries": new_password}, tmp_path) == set()
    new_address = [{"address": "s.example", "username": "u", "password": "one"}]
    assert diff(state, {**old, "registries": new_address}, tmp_path) == {"registries[0]"}
    assert diff(state, {**old, "pull": True}, tmp_path) == {"pull", "contextHash"}  # pull always rebuilds
    assert diff(state, {**old, "labels": {"a": "b"}}, tmp_path) == {"labels"}


def test_diff_reads_exports_as_the_providers_structs_do(tmp_path: Path) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM scratch\n"})
    zstd = {"registry": {"ociMediaTypes": True, "compression": "zstd", "compressionLevel": 3, "forceCompression": True}}
    old = {"context": {"location": "."}, "dockerfile": {"location": "Dockerfile"}, "exports": [zstd]}
    state = _state(old, tmp_path)
    # Pulumi's state holds a map in another order and every number as a double: no change.
    stored = {"registry": {"forceCompression": True, "compressionLevel": 3.0, "compression": "zstd",
                           "ociMediaTypes": True}}
    assert diff({**state, "exports": [stored]}, old, tmp_path) == set()
    gzip = {"registry": {**zstd["registry"], "compression": "gzip"}}
    assert diff(state, {**old, "exports": [gzip]}, tmp_path) == {"exports"}


def test_diff_compares_exports_as_the_cli_strings_the_provider_prints(tmp_path: Path) -> None:
    """image.go:966 compares fmt.Sprint of the exports: each its `--output` string (export.go,
    Export.String), so what that string leaves out is no change."""
    _tree(tmp_path, {"Dockerfile": "FROM scratch\n"})
    level0 = {"registry": {"compression": "zstd", "forceCompression": True}}
    old = {"context": {"location": "."}, "dockerfile": {"location": "Dockerfile"}, "exports": [level0]}
    state = _state(old, tmp_path)
    # At level 0 the string has no compression at all (export.go:519-522): zstd → gzip rebuilds nothing.
    gzip0 = {"registry": {"compression": "gzip", "forceCompression": False}}
    assert diff(state, {**old, "exports": [gzip0]}, tmp_path) == set()
    # The level is clamped to 22; a default written out is the default Check fills in.
    at = {"registry": {"compression": "zstd", "compressionLevel": 23, "push": True, "store": True}}
    assert diff({**state, "exports": [at]}, {**old, "exports": [{"registry": {**at["registry"],
                                                                              "compressionLevel": 30,
                                                                              "push": None}}]},
                tmp_path) == set()
    # A disabled export prints "" whatever it holds; push=false is a different string.
    off = {"registry": {"push": False}, "disabled": True}
    assert diff({**state, "exports": [off]}, {**old, "exports": [{**off, "registry": {}}]}, tmp_path) == set()
    assert diff(state, {**old, "exports": [{"registry": {"push": False}}]}, tmp_path) == {"exports"}


def test_export_strings_are_the_providers() -> None:
    """Export.String and its parts (export.go at v0.0.22), with the schema's defaults applied."""
    shipped = {"registry": {"compression": "zstd", "compressionLevel": 3.0, "forceCompression": True,
                            "ociMediaTypes": True}}
    assert export_string(shipped) == ("type=registry,push=true,store=true,oci-mediatypes=true,"
                                      "compression=zstd,compression-level=3,force-compression=true")
    assert export_string({"image": {"names": ["a", "b"], "annotations": {"z": "1", "a": "2"}}}) == (
        "type=image,store=true,oci-mediatypes=false,name=a,name=b,annotation.a=2,annotation.z=1")
    assert export_string({"oci": {"dest": "out.tar", "annotations": {"k": "v"}, "names": ["n"]}}) == (
        "type=oci,dest=out.tar,tar=true,oci-mediatypes=true,annotation.k=v,name=n")
    assert export_string({"tar": {"dest": "x"}}) == "type=tar,dest=x"
    assert export_string({"local": {"dest": "d"}}) == "type=local,dest=d"
    assert export_string({"cacheonly": {}}) == "type=cacheonly"
    assert export_string({"raw": "type=registry"}) == "type=registry"
    assert export_string({"registry": {}, "disabled": True}) == ""

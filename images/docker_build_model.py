"""How pulumi-docker-build decides that an Image changed, modelled from its source for mocks and tests.

There is no Docker engine, Pulumi CLI or provider plugin where the tests run, so the Pulumi mocks
(stacks/tools/mocks.py) return the `contextHash` computed here, and the tests ask `diff()` what
`pulumi preview` would show. Both are ports of pulumi-docker-build v0.0.22 (the version infra/uv.lock
pins), `provider/internal/`:

- `context.go:202-254` hashBuildContext: one sha256 over the Dockerfile's bytes, then every file the
  ignore patterns keep in the main context, then in each local named context (sorted by name);
  `context.go:164-196` hashFile adds each file's content (a symlink's target), its path, its mode;
- `context.go:305-337` getIgnorePatterns: `<Dockerfile>.dockerignore` if there is one, else the main
  context's `.dockerignore`, and the same patterns filter the named contexts too (`:243`);
- `image.go:928-1056` Diff: which inputs are compared, and `contextHash` recomputed from the new
  inputs against the one in state;
- `export.go` (Export.String :121 and the Stringers of its members; ExportWithCompression.String
  :519-540): Diff compares the exports as `fmt.Sprint` prints them (image.go:966), each its CLI
  `--output` string after Check's defaults, so what that string leaves out (compression at level 0,
  a level past 22, a disabled entry's fields) is no change, and a map's key order or 3.0 for 3
  never reaches it.

Relative locations are resolved against the provider's working directory, the program folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from images.dockerignore import SKIP_DIR, PatternMatcher, ignore_file_patterns, walk

# Image inputs Diff compares as values (image.go:937-1017); context, dockerfile, exports, secrets
# and registries have rules of their own below.
_COMPARED = ("addHosts", "buildArgs", "buildOnPreview", "builder", "cacheFrom", "cacheTo", "labels", "load",
             "network", "noCache", "platforms", "pull", "push", "ssh", "tags", "target")


def context_hash(context: str, dockerfile: str, named: Mapping[str, str], cwd: Path) -> str:
    """hashBuildContext (context.go:202-254) for a context location, a Dockerfile location and the
    named contexts' locations, as the provider resolves them from `cwd`."""
    digest = hashlib.sha256()
    root, dockerfile_path = cwd / context, cwd / dockerfile
    local_root, local_dockerfile = bool(context) and root.is_dir(), bool(dockerfile) and dockerfile_path.is_file()
    excludes: list[str] = []
    if local_root or local_dockerfile:
        excludes = _ignore_patterns(dockerfile_path, root if local_root else None)
    if local_dockerfile:
        try:
            digest.update(dockerfile_path.read_bytes())  # its content, not its name (context.go:284-298)
        except OSError:
            return ""  # context.go:220-223 returns an empty hash, and no error, when it cannot read it
    if local_root:
        _hash_folder(digest, root, excludes)
    for name in sorted(named):
        if named[name] and (cwd / named[name]).is_dir():  # remote and docker-image:// contexts are not hashed
            _hash_folder(digest, cwd / named[name], excludes)  # the main context's patterns (:243)
    return digest.hexdigest()


def _ignore_patterns(dockerfile: Path, root: Path | None) -> list[str]:
    """getIgnorePatterns (context.go:305-337): the first ignore file that exists decides."""
    for candidate in (Path(f"{dockerfile}.dockerignore"), *([root / ".dockerignore"] if root else [])):
        if candidate.exists():
            return ignore_file_patterns(candidate)
    return []


def _hash_folder(digest: Any, root: Path, excludes: list[str]) -> None:
    """hashPath + hashFile (context.go:164-196, 257-282) over fsutil's filtered walk."""
    matcher = PatternMatcher(excludes)

    def visit(path: str, lstat: os.stat_result) -> Literal["skip-dir"] | None:
        mode = lstat.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return None
        # hashFile opens the file through the filtered FS, which checks the path again with
        # MatchesOrParentMatches (fsutil filter.go:150-170); "not found" there, or a dangling
        # symlink, becomes SkipDir (fs.go:55-59): the rest of that folder goes unhashed.
        if matcher.matches_or_parent_matches(path):
            return SKIP_DIR
        try:
            content = (root / path).read_bytes()  # follows a symlink, as os.Open does
        except (FileNotFoundError, NotADirectoryError):
            return SKIP_DIR
        except IsADirectoryError:
            return None  # a symlink to a folder adds nothing (context.go:184-187)
        digest.update(content)
        digest.update(os.fsencode(path))
        digest.update(_go_mode_string(mode).encode())
        return None

    walk(root, excludes, visit)


def _go_mode_string(mode: int) -> str:
    """Go's fs.FileMode.String() of an lstat mode, for the regular files and symlinks hashFile sees."""
    kinds = ("L" if stat.S_ISLNK(mode) else "") + "".join(
        letter for bit, letter in ((stat.S_ISUID, "u"), (stat.S_ISGID, "g"), (stat.S_ISVTX, "t")) if mode & bit)
    permissions = "".join(letter if mode & (1 << (8 - index)) else "-" for index, letter in enumerate("rwxrwxrwx"))
    return (kinds or "-") + permissions


def image_context_hash(inputs: Mapping[str, Any], cwd: Path) -> str:
    """The contextHash docker-build stores for an Image registered with these (engine, camelCase) inputs."""
    context = inputs.get("context") or {}
    named = {name: value.get("location", "") for name, value in (context.get("named") or {}).items()}
    return context_hash(context.get("location") or "", _dockerfile(inputs), named, cwd)


def _dockerfile(inputs: Mapping[str, Any]) -> str:
    """Context.validate's default as Diff calls it (context.go:98-134, preview): `<context>/Dockerfile`
    when neither a location nor an inline Dockerfile is given and the context is a known local path."""
    dockerfile = inputs.get("dockerfile") or {}
    location = str((inputs.get("context") or {}).get("location") or "")
    if dockerfile.get("location") or dockerfile.get("inline") or not location or "://" in location:
        return str(dockerfile.get("location") or "")
    return str(Path(location) / "Dockerfile")


# The defaults Check fills into each export before Diff compares them (infer.DefaultCheck, from the
# Annotate methods; provider/cmd/pulumi-resource-docker-build/schema.json at v0.0.22).
_WITH_DEFAULTS = {"compression": "gzip", "compressionLevel": 0, "forceCompression": False, "ociMediaTypes": False}
_EXPORT_DEFAULTS: dict[str, dict[str, Any]] = {
    "registry": {**_WITH_DEFAULTS, "push": True, "store": True},
    "image": {**_WITH_DEFAULTS, "store": True},
    "docker": {**_WITH_DEFAULTS, "tar": True},
    "oci": {**_WITH_DEFAULTS, "ociMediaTypes": True, "tar": True},
}
_MAX_COMPRESSION_LEVEL = 22


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def _join(*parts: str) -> str:
    """cache.go's join: the non-empty parts, comma-separated."""
    return ",".join(part for part in parts if part)


def _with_oci(fields: Mapping[str, Any]) -> str:
    """ExportWithOCI.String."""
    value = fields.get("ociMediaTypes")
    return "" if value is None else f"oci-mediatypes={_go_bool(value)}"


def _with_compression(fields: Mapping[str, Any]) -> str:
    """ExportWithCompression.String (export.go:519-540): nothing at all at level 0, the level at most 22."""
    level = int(fields.get("compressionLevel") or 0)
    if level == 0:
        return ""
    parts = []
    if fields.get("compression") is not None:
        parts.append(f"compression={fields['compression']}")
    if level > 0:
        parts.append(f"compression-level={min(level, _MAX_COMPRESSION_LEVEL)}")
    if fields.get("forceCompression") is not None:
        parts.append(f"force-compression={_go_bool(fields['forceCompression'])}")
    return ",".join(parts)


def _with_names(fields: Mapping[str, Any]) -> str:
    return ",".join(f"name={name}" for name in fields.get("names") or ())


def _with_annotations(fields: Mapping[str, Any]) -> str:
    return ",".join(sorted(f"annotation.{key}={value}" for key, value in (fields.get("annotations") or {}).items()))


def _image(fields: Mapping[str, Any]) -> str:
    """ExportImage.String."""
    flags = (("push", "push"), ("pushByDigest", "push-by-digest"), ("insecure", "insecure"),
             ("nameCanonical", "name-canonical"), ("unpack", "unpack"), ("store", "store"))
    parts = [f"{flag}={_go_bool(fields[key])}" for key, flag in flags[:3] if fields.get(key) is not None]
    if fields.get("danglingNamePrefix"):
        parts.append(f"dangling-name-prefix={fields['danglingNamePrefix']}")
    parts += [f"{flag}={_go_bool(fields[key])}" for key, flag in flags[3:] if fields.get(key) is not None]
    return _join("type=image", ",".join(parts), _with_oci(fields), _with_compression(fields),
                 _with_names(fields), _with_annotations(fields))


def _docker(fields: Mapping[str, Any]) -> str:
    """ExportDocker.String (annotations before names, unlike the image's)."""
    parts = [f"dest={fields['dest']}"] if fields.get("dest") else []
    if fields.get("tar") is not None:
        parts.append(f"tar={_go_bool(fields['tar'])}")
    return _join("type=docker", ",".join(parts), _with_oci(fields), _with_compression(fields),
                 _with_annotations(fields), _with_names(fields))


_STRINGS: dict[str, Any] = {  # Export.String's order: the first set member is the one printed
    "tar": lambda fields: f"type=tar,dest={fields.get('dest', '')}",
    "local": lambda fields: f"type=local,dest={fields.get('dest', '')}",
    "registry": lambda fields: _image(fields).replace("type=image", "type=registry", 1),
    "image": _image,
    "oci": lambda fields: _docker(fields).replace("type=docker", "type=oci", 1),
    "docker": _docker,
    "cacheonly": lambda _: "type=cacheonly",
}


def export_string(export: Mapping[str, Any]) -> str:
    """Export.String (export.go:121 at v0.0.22): the entry's CLI `--output` value after Check's
    defaults, or "" when it is disabled."""
    if export.get("disabled"):
        return ""
    parts = []
    for kind, render in _STRINGS.items():
        fields = export.get(kind)
        if fields is not None:
            given = {key: value for key, value in fields.items() if value is not None}
            parts.append(render({**_EXPORT_DEFAULTS.get(kind, {}), **given}))
    return _join(*parts, str(export.get("raw") or ""))


def _exports_string(exports: Any) -> str:
    """fmt.Sprint of the exports, as Diff compares them (image.go:966): every element printed with
    its String method, space-separated in brackets."""
    return "[" + " ".join(export_string(export) for export in exports or ()) + "]"


def diff(state: Mapping[str, Any], inputs: Mapping[str, Any], cwd: Path) -> set[str]:
    """The properties `pulumi preview` shows as changed for an Image (image.go:928-1056): `state` is what
    the last `up` stored (its inputs and outputs, secrets unwrapped), `inputs` the program's new ones.
    Local exports' existence (:969-974) is not modelled: the stacks export to registries only."""
    changed = {key for key in _COMPARED if state.get(key) != inputs.get(key)}
    old_context, new_context = state.get("context") or {}, inputs.get("context") or {}
    if old_context.get("location") != new_context.get("location"):
        changed.add("context.location")
    if old_context.get("named") != new_context.get("named"):
        changed.add("context.named")
    if state.get("dockerfile") != {**(inputs.get("dockerfile") or {}), "location": _dockerfile(inputs)}:
        changed.add("dockerfile")
    if _exports_string(state.get("exports")) != _exports_string(inputs.get("exports")):
        changed.add("exports")
    ignored = set(inputs.get("ignoreSecretsInDiffCalculation") or ())
    old_secrets, new_secrets = dict(state.get("secrets") or {}), dict(inputs.get("secrets") or {})
    for key in ignored & old_secrets.keys() & new_secrets.keys():
        del old_secrets[key], new_secrets[key]
    if old_secrets != new_secrets:
        changed.add("secrets")
    if inputs.get("pull") and (inputs.get("exports") or inputs.get("push") or inputs.get("load")):
        changed.add("contextHash")  # pull=true always rebuilds (:1019-1023)
    if image_context_hash(inputs, cwd) != state.get("contextHash"):
        changed.add("contextHash")
    old_registries, new_registries = state.get("registries") or [], inputs.get("registries") or []
    if len(old_registries) != len(new_registries):
        changed.add("registries")
    else:  # a changed password alone is no change; the first other difference is named (:1038-1050)
        pairs = enumerate(zip(old_registries, new_registries, strict=True))
        changed |= next(({f"registries[{index}]"} for index, (old, new) in pairs
                         if (old.get("address"), old.get("username")) != (new.get("address"), new.get("username"))),
                        set())
    return changed

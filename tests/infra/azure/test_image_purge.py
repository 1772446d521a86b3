"""The Azure image purge of docs/pulumi.md, run as written against a fake registry: `az` and `pulumi`
stand-ins answer exactly the commands it uses, in the shapes the Azure CLI and Pulumi print, and refuse
anything else. A build is an index (its platform manifest and its provenance attestation, both
untagged); a revision index (`rev-<revision>`) holds the same parts; the build cache is tagged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.docs.markdown import blocks

DOC = Path(__file__).resolve().parents[3] / "docs" / "pulumi.md"
REGISTRY = "vfprodacr"

FAKE_AZ = '''
import json, os, sys
scenario = json.load(open(os.environ["FAKE_REGISTRY"]))
args = sys.argv[1:]
def option(name):
    return args[args.index(name) + 1]
def refuse():
    print(f"ERROR: the fake registry does not answer: az {' '.join(args)}", file=sys.stderr)
    sys.exit(2)
if args[:2] == ["container", "list"] and args[2:] == ["-g", scenario["group"], "--query",
                                                     "[].containers[].image", "-o", "tsv"]:
    print("\\n".join(scenario["running"]))
elif args[:3] == ["acr", "repository", "show"] and option("-n") == scenario["registry"]:
    if option("--repository") not in scenario["repositories"]:
        print("ERROR: repository not found", file=sys.stderr)
        sys.exit(3)
elif args[:3] == ["acr", "manifest", "list-metadata"] and option("-r") == scenario["registry"] \\
        and option("-o") == "json":
    manifests = scenario["repositories"][option("-n")]
    print(json.dumps([{"digest": d, "tags": m["tags"] or None, "lastUpdateTime": m["updated"],
                       "createdTime": m["updated"]} for d, m in manifests.items()]))
elif args[:3] == ["acr", "manifest", "show"] and option("-r") == scenario["registry"] and option("-o") == "json":
    repository, _, digest = option("-n").partition("@")
    found = scenario["repositories"].get(repository, {}).get(digest)
    if digest in scenario.get("unreadable", ()):
        print("ERROR: (TooManyRequests) the registry is throttling requests", file=sys.stderr)
        sys.exit(1)
    if found is None:
        print("ERROR: manifest unknown", file=sys.stderr)
        sys.exit(3)
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"digest": part, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
                          for part in found["parts"]]} if found["parts"] else \\
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
    print(json.dumps(body, indent=2))
else:
    refuse()
'''

FAKE_PULUMI = '''
import json, os, sys
scenario = json.load(open(os.environ["FAKE_REGISTRY"]))
args = sys.argv[1:]
if args[:2] == ["stack", "output"] and args[3:] == ["-s", "azure-prod"] and args[2] == "resourceGroup":
    print(scenario["group"])
elif args[:2] == ["stack", "output"] and args[3:] == ["-s", "azure-prod"] and args[2] == "releases":
    print(json.dumps(scenario["releases"], indent=4))
else:
    print(f"error: the fake stack does not answer: pulumi {' '.join(args)}", file=sys.stderr)
    sys.exit(255)
'''


def digest(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def manifest(updated: str, *parts: str, tags: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"updated": updated, "parts": [digest(p) for p in parts], "tags": list(tags)}


def the_script() -> str:
    (block,) = [b for b in blocks(DOC) if "acr manifest list-metadata" in b.text]
    return block.text.replace("<registry>", REGISTRY)


def purge(tmp_path: Path, scenario: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, source in (("az", FAKE_AZ), ("pulumi", FAKE_PULUMI)):
        tool = bin_dir / name
        tool.write_text(f"#!{sys.executable}\n{source}")
        tool.chmod(0o755)
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_REGISTRY": str(tmp_path / "scenario.json")}
    return subprocess.run(["bash", "-c", the_script()], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def ago(delta: timedelta) -> str:
    """An ACR `lastUpdateTime`, from now: read as the purge runs, so a late-running test keeps its ages."""
    return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def registry() -> dict[str, Any]:
    """A release kept by the stack, one a container group still runs, one superseded, and a new one."""
    old, new = ago(timedelta(days=3)), ago(timedelta(minutes=5))  # beyond and within the script's horizon
    bot = {
        digest("kept"): manifest(old, "kept-amd64", "kept-attestation"),
        digest("kept-amd64"): manifest(old), digest("kept-attestation"): manifest(old),
        digest("kept-rev"): manifest(old, "kept-amd64", "kept-attestation", tags=("rev-aaaa",)),
        digest("running"): manifest(old, "running-amd64"), digest("running-amd64"): manifest(old),
        digest("gone"): manifest(old, "gone-amd64", "gone-attestation"),
        digest("gone-amd64"): manifest(old), digest("gone-attestation"): manifest(old),
        digest("gone-rev"): manifest(old, "gone-amd64", "gone-attestation", tags=("rev-bbbb",)),
        digest("new"): manifest(new, "new-amd64", tags=("latest",)), digest("new-amd64"): manifest(new),
        digest("cache"): manifest(new, tags=("buildcache",)), digest("old-cache"): manifest(old),
        digest("pushed-just-now"): manifest(new),
    }
    image = f"{REGISTRY}.azurecr.io/bot@"
    return {
        "registry": REGISTRY, "group": "voicefleet-azure-prod",
        "releases": {"releases": [{"name": "r-kept", "images": {"*": image + digest("kept")}},
                                  {"name": "r-new", "images": {"*": image + digest("new")}}], "canaryPercent": 10},
        "running": [image + digest("running"), "mcr.microsoft.com/azuredocs/aci-helloworld:latest"],
        "repositories": {"bot": bot},
    }


@pytest.fixture(autouse=True)
def _tools() -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is missing (Debian's jq; .ci/run installs it)")


def test_the_purge_offers_a_superseded_build_with_its_parts_and_its_revision_index_first(tmp_path: Path) -> None:
    done = purge(tmp_path, registry())
    assert done.returncode == 0, done.stderr
    offered = (tmp_path / "purge.txt").read_text().split()
    expected = ["gone-rev", "gone", "gone-amd64", "gone-attestation", "old-cache"]
    assert sorted(offered) == sorted(f"bot@{digest(name)}" for name in expected)
    assert offered[0] == f"bot@{digest('gone-rev')}"  # the index that holds the build's parts goes first


def test_a_registry_that_cannot_be_read_stops_the_purge_instead_of_offering_everything(tmp_path: Path) -> None:
    for unreadable in ("kept", "kept-rev", "gone-rev"):  # a kept build's parts, or a revision index's
        done = purge(tmp_path, {**registry(), "unreadable": [digest(unreadable)]})
        assert done.returncode != 0 and "throttling" in done.stderr, unreadable
        assert not (tmp_path / "purge.txt").exists(), unreadable


def test_a_revision_tag_on_a_build_itself_keeps_it(tmp_path: Path) -> None:
    """A single-manifest build carries its revision tag itself: it has no parts to judge it by."""
    scenario = registry()
    bot = scenario["repositories"]["bot"]
    bot[digest("single-gone")] = manifest(bot[digest("gone")]["updated"], tags=("rev-cccc",))
    bot[digest("single-kept")] = manifest(bot[digest("gone")]["updated"], tags=("rev-dddd",))
    scenario["releases"]["releases"].append({"name": "r-single", "images": {
        "*": f"{REGISTRY}.azurecr.io/bot@{digest('single-kept')}"}})
    done = purge(tmp_path, scenario)
    assert done.returncode == 0, done.stderr
    offered = (tmp_path / "purge.txt").read_text().split()
    assert f"bot@{digest('single-gone')}" not in offered and f"bot@{digest('single-kept')}" not in offered
    assert f"bot@{digest('gone-rev')}" in offered

"""The SIP edge's boot fetches Debian packages over HTTPS wherever its network allows only that: the
edge's image build (Kamailio, with several workers) runs apt-get inside the dispatcher image, whose
lists name http://deb.debian.org as every official Debian image's do, so its lists are rewritten
before apt-get reads them, on both clouds (one Containerfile); the GCP host, whose firewall denies port
80 out, rewrites its own too. Each command runs here, in bash, on a copy of Debian's own lists."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import PBX, run_with_edge
from tests.infra.conftest import StackRunner

# /etc/apt/sources.list.d/debian.sources of python:3.11-slim-trixie (debuerreotype's default: port 80).
DEBIAN_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp
"""
# A Debian 12 Azure image's lists (debian-cloud-images, config_space/bookworm): sources.list only points
# on; debian.sources reads mirror lists, which cloud-init writes at first boot, before the boot script
# runs, from the image's AZURE package_mirrors failsafe (01_debian_cloud.cfg: generate_mirrorlists).
AZURE_IMAGE_APT = {
    "sources.list": "# See /etc/apt/sources.list.d/debian.sources\n",
    "sources.list.d/debian.sources": """Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian-security.list
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
""",
    "mirrors/debian.list": "http://azure.deb.debian.cloud/debian\n",
    "mirrors/debian-security.list": "http://azure.deb.debian.cloud/debian-security\n",
}
BOOT = {"aws": ("aws:ec2/instance:Instance", "userData"),
        "gcp": ("gcp:compute/instance:Instance", "metadataStartupScript"),
        "azure": ("azure-native:compute:VirtualMachine", "osProfile")}
SEVERAL_WORKERS = {"enabled": True, "workers": 4, "trunks": [PBX]}


def _boot_script(stack: StackRunner, cloud: str) -> str:
    kind, field = BOOT[cloud]
    run = run_with_edge(stack, SEVERAL_WORKERS, cloud=cloud, secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    (instance,) = [r for r in run.of_type(kind) if r.name.endswith("-sip-edge")]
    if cloud == "azure":  # customData: base64, as ARM takes it
        return base64.b64decode(unwrap(instance.inputs)[field]["customData"]).decode()
    return str(unwrap(instance.inputs)[field])


def _host_before_update(script: str) -> str:
    """What the host's boot runs before its own apt-get update."""
    return script.split("\napt-get update", 1)[0].split("export DEBIAN_FRONTEND=noninteractive\n", 1)[1]


def _run_on_lists(before_update: str, tmp_path: Path, files: dict[str, str]) -> Path:
    """`before_update` (what runs before an `apt-get update`) run in bash on a copy of `files` (paths
    under /etc/apt); the copy's /etc/apt."""
    lists = tmp_path / "etc" / "apt"
    shutil.rmtree(lists, ignore_errors=True)
    for name, text in files.items():
        (lists / name).parent.mkdir(parents=True, exist_ok=True)
        (lists / name).write_text(text)
    command = before_update.replace("/etc/apt/", f"{lists}/")
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True,
                         timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    return lists


def _sources_apt_reads(before_update: str, tmp_path: Path) -> list[str]:
    """The URIs apt-get would read after `before_update` has run on a copy of Debian's lists."""
    lists = _run_on_lists(before_update, tmp_path, {"sources.list.d/debian.sources": DEBIAN_SOURCES})
    text = "".join(p.read_text() for p in sorted(lists.rglob("*")) if p.is_file())
    return re.findall(r"^URIs: (\S+)", text, re.MULTILINE)


def _containerfile_apt(script: str) -> str:
    """The Containerfile's RUN that installs Kamailio, up to its apt-get update, its lines joined."""
    containerfile = script[script.index("<<'CONTAINERFILE'\n"):script.index("\nCONTAINERFILE\n")]
    joined = containerfile.replace("\\\n", " ")
    (run,) = [line for line in joined.splitlines() if line.startswith("RUN ") and "kamailio" in line]
    return run.removeprefix("RUN ").split("apt-get update", 1)[0].rstrip().removesuffix("&&")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_edges_image_build_fetches_kamailio_over_https(stack: StackRunner, cloud: str, tmp_path: Path) -> None:
    script = _boot_script(stack, cloud)
    assert "--no-install-recommends kamailio" in script
    uris = _sources_apt_reads(_containerfile_apt(script), tmp_path)
    assert uris == ["https://deb.debian.org/debian", "https://deb.debian.org/debian-security"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_gcp_host_fetches_its_packages_over_https(stack: StackRunner, tmp_path: Path) -> None:
    script = _boot_script(stack, "gcp")
    uris = _sources_apt_reads(_host_before_update(script), tmp_path)
    assert uris == ["https://deb.debian.org/debian", "https://deb.debian.org/debian-security"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_azure_host_fetches_its_packages_over_https_on_debians_azure_image(stack: StackRunner,
                                                                                tmp_path: Path) -> None:
    """Azure's network lets only HTTPS out: the boot's rewrite reaches the mirror lists cloud-init wrote."""
    lists = _run_on_lists(_host_before_update(_boot_script(stack, "azure")), tmp_path, AZURE_IMAGE_APT)
    text = {str(p.relative_to(lists)): p.read_text() for p in lists.rglob("*") if p.is_file()}
    assert not [name for name, body in text.items() if "http://" in body]
    assert text["mirrors/debian.list"] == "https://deb.debian.org/debian\n"
    assert text["mirrors/debian-security.list"] == "https://deb.debian.org/debian-security\n"
    assert text["sources.list.d/debian.sources"] == AZURE_IMAGE_APT["sources.list.d/debian.sources"]

"""The SIP edge's boot fetches Debian packages over HTTPS wherever its network allows only that: the
edge's image build (Kamailio, with several workers) runs apt-get inside the dispatcher image, whose
lists name http://deb.debian.org as every official Debian image's do, so its lists are rewritten
before apt-get reads them, on both clouds (one Containerfile); the GCP host, whose firewall denies port
80 out, rewrites its own too. Each command runs here, in bash, on a copy of Debian's own lists."""

from __future__ import annotations

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
BOOT = {"aws": ("aws:ec2/instance:Instance", "userData"),
        "gcp": ("gcp:compute/instance:Instance", "metadataStartupScript")}
# Inbound only: outbound calls need one worker.
SEVERAL_WORKERS = {"enabled": True, "workers": 4, "trunks": [PBX]}


def _boot_script(stack: StackRunner, cloud: str) -> str:
    kind, field = BOOT[cloud]
    run = run_with_edge(stack, SEVERAL_WORKERS, cloud=cloud, secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    (instance,) = [r for r in run.of_type(kind) if r.name.endswith("-sip-edge")]
    return str(unwrap(instance.inputs)[field])


def _sources_apt_reads(before_update: str, tmp_path: Path) -> list[str]:
    """The URIs apt-get would read after `before_update` (what runs before its `apt-get update`) has run
    in bash on a copy of Debian's lists."""
    lists = tmp_path / "etc" / "apt"
    shutil.rmtree(lists, ignore_errors=True)
    (lists / "sources.list.d").mkdir(parents=True)
    (lists / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    command = before_update.replace("/etc/apt/", f"{lists}/")
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True,
                         timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
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
    host = script.split("\napt-get update", 1)[0].split("export DEBIAN_FRONTEND=noninteractive\n", 1)[1]
    uris = _sources_apt_reads(host, tmp_path)
    assert uris == ["https://deb.debian.org/debian", "https://deb.debian.org/debian-security"]

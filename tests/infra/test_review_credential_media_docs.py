"""Hostile review of what docs/sip.md#inbound-digest promises a PBX on a dynamic address: "A PBX on a dynamic
address ... leaves `sources` out". Its RTP comes from that same dynamic address, and a cloud stack still holds the
RTP ports to the trunk's `mediaSources`, no wider than /16 without allowAnyMediaSource; so such a PBX's calls are
silent unless the trunk opens its media to 0.0.0.0/0 with allowAnyMediaSource, which lets anyone on the internet
send to a call's RTP port and take its audio (PJSIP answers whoever sent last, docs/sip.md#what-the-edge-defends-
and-what-needs-a-firewall). The section never says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.config.settings import SettingsError
from tests.infra.aws.test_sip_edge import EDGE, run_with_edge
from tests.infra.conftest import StackRunner
from tests.infra.test_sip_edge_credential_sources import OFFICE, PASSWORDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sip.md"


def _inbound_digest_section() -> str:
    text = DOCS.read_text()
    start = text.index("\n## Inbound digest\n")
    return text[start:text.index("\n## ", start + 1)]


def test_the_docs_tell_a_dynamic_address_pbx_what_its_media_needs(stack: StackRunner) -> None:
    dynamic = {**OFFICE, "mediaSources": ["0.0.0.0/0"]}  # the PBX's RTP from wherever its address is today
    with pytest.raises(SettingsError, match="allowAnyMediaSource"):
        run_with_edge(stack, {**EDGE, "trunks": [*EDGE["trunks"], dynamic]}, secrets=PASSWORDS)
    assert "allowAnyMediaSource" in _inbound_digest_section()

"""The TLS origination URI a cloud stack outputs with sipEdge.tlsPort (docs/sip.md#tls-in-the-cloud): the AWS,
GCP and Azure stacks each export sipEdgeOriginationUriTls, `sip:<public address>:<tlsPort>;transport=tls`, beside
the UDP one, and none without tlsPort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import run_with_edge
from tests.infra.azure.test_sip_edge import run_azure_edge
from tests.infra.config.test_sip_edge_tls import _tls_edge, _tls_secrets
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import run_gcp_edge

STACKS: dict[str, tuple[str, Callable[..., Run]]] = {
    "aws": ("voicefleet:aws:AwsStack", run_with_edge), "gcp": ("voicefleet:gcp:GcpStack", run_gcp_edge),
    "azure": ("voicefleet:azure:AzureStack", run_azure_edge)}


def _outputs(run: Run, component: str) -> dict[str, Any]:
    return dict(unwrap(run.completed[run.one(component).urn]))


@pytest.mark.parametrize("cloud", sorted(STACKS))
def test_a_stack_with_tls_outputs_its_tls_origination_uri_beside_the_udp_one(stack: StackRunner, cloud: str) -> None:
    component, run_edge = STACKS[cloud]
    outputs = _outputs(run_edge(stack, _tls_edge(tlsPort=5062), secrets=_tls_secrets()), component)
    address = outputs["sipEdgeAddress"]
    assert outputs["sipEdgeOriginationUri"] == f"sip:{address}:5060"
    assert outputs["sipEdgeOriginationUriTls"] == f"sip:{address}:5062;transport=tls"
    assert "sipEdgeOriginationUriTls" not in _outputs(run_edge(stack), component)  # no tlsPort: none

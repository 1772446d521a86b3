"""The SIP edges' figures in the metric lines the cloud stacks ship (`METRIC_LINES`): read on the lines' own
schedule, not only when someone reads `/status` or `/metrics`, and within the status's few seconds of cache
(dispatcher/phone/sip_edge_status.py), so the lines ask no edge more often than a dashboard would."""

from __future__ import annotations

import json

import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.phone.test_sip_edge_status import EDGE_STATUS, SECRET, StandInEdge
from tests.support.ports import free_port


async def test_the_lines_carry_the_edges_answering_not_answering_and_refused_read_on_their_own_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with StandInEdge(SECRET, EDGE_STATUS) as good:  # its trunk pbx refused 403
        env = {"SIP_EDGE_URL": f"{good.url},{down}", "SIP_EDGE_SECRET": SECRET, "METRIC_LINES": "json"}
        app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
        lines = app.state.voicefleet.metric_lines
        try:
            capsys.readouterr()
            await lines.write()  # nobody read /status nor /metrics
            await lines.write()  # a second line within the status's cache: the edges are not asked again
            written = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "metricNamespace" in line]
        finally:
            await app.state.voicefleet.aclose()
    figures = [(line.get("SipEdgesAnswering"), line.get("SipEdgesNotAnswering"),
                line.get("SipEdgeRegistrationsRefused")) for line in written if "Provider" in line]
    assert figures == [(1, 1, 1), (1, 1, 1)], written
    assert good.asked == 1

"""The SIP edges' figures in `/metrics`, as the dispatcher last asked them (dispatcher/phone/sip_edge_status.py,
read again at each scrape and each `GET /status` older than its few seconds). One series per edge SIP_EDGE_URL
lists (and per registering trunk): an alert on `voicefleet_sip_edge_answering == 0` finds an edge that stopped
answering, `voicefleet_sip_edge_trunk_registered == 0` a registration its registrar refused. The edges not
answering and the registrations refused are also counted whole, for the metric lines the cloud stacks ship
(dispatcher/observability/metric_catalogue.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

# Registrations that bring no inbound call: the registrar refused (or never answered), or PJSUA sent nothing.
NOT_REGISTERED = frozenset({"refused", "failed"})


class SipEdgeGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._answering = Gauge("voicefleet_sip_edge_answering", "1 when the SIP edge answered its status when "
                                "last asked, 0 when it did not (GET /status says why).", ["edge"], registry=registry)
        self._calls = Gauge("voicefleet_sip_edge_calls", "Calls in progress at the SIP edge, inbound and outbound.",
                            ["edge"], registry=registry)
        self._slots = Gauge("voicefleet_sip_edge_call_slots", "The SIP edge's call slots in all.", ["edge"],
                            registry=registry)
        self._registered = Gauge("voicefleet_sip_edge_trunk_registered", "1 while a registering trunk is "
                                 "registered with its registrar, else 0.", ["edge", "trunk"], registry=registry)
        self._not_answering = Gauge("voicefleet_sip_edges_not_answering", "The SIP edges that did not answer their "
                                    "status when last asked.", registry=registry)
        self._refused = Gauge("voicefleet_sip_edge_registrations_refused", "The SIP edge's trunks whose registrar "
                              "refused its REGISTER (or never answered: 408), or to which PJSUA sent none (failed).",
                              ["edge"], registry=registry)
        self._trunks: dict[str, set[str]] = {}  # each edge's registering trunks shown, for their removal

    def show(self, edges: Sequence[dict[str, Any]]) -> None:
        """Each edge's answer; an edge that did not answer keeps its `answering` series alone (its others are
        removed, not left at their last values)."""
        self._not_answering.set(sum(1 for edge in edges if not edge["answering"]))
        for edge in edges:
            url = edge["url"]
            self._answering.labels(url).set(1 if edge["answering"] else 0)
            self._forget(url)
            if (calls := edge.get("calls")) is not None:
                self._calls.labels(url).set(calls["in_progress"])
                self._slots.labels(url).set(calls["total"])
            if (trunks := edge.get("trunks")) is not None:
                self._refused.labels(url).set(sum(1 for trunk in trunks if trunk["registration"] in NOT_REGISTERED))
            for trunk in edge.get("trunks") or []:
                if trunk["registration"] != "not_registering":
                    self._registered.labels(url, trunk["name"]).set(1 if trunk["registration"] == "registered" else 0)
                    self._trunks.setdefault(url, set()).add(trunk["name"])

    def _forget(self, url: str) -> None:
        """`url`'s series but `answering`, before its new answer sets those it has."""
        with contextlib.suppress(KeyError):
            self._calls.remove(url)
        with contextlib.suppress(KeyError):
            self._slots.remove(url)
        with contextlib.suppress(KeyError):
            self._refused.remove(url)
        for trunk in self._trunks.pop(url, set()):
            with contextlib.suppress(KeyError):
                self._registered.remove(url, trunk)

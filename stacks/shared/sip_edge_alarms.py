"""The two alarms every cloud stack with a SIP edge (`sipEdge`) raises, read from the dispatcher's metric lines
(dispatcher/observability/metric_catalogue.py): each cloud's observability module builds them its own way
(CloudWatch, Cloud Monitoring, a log alert) from these names, metrics, durations and words, so the three
say the same thing. docs/sip.md ("Is the edge up?") is what the words point at."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SipEdgeAlarm:
    key: str  # the alarm's name after the stack's prefix
    metric: str  # a gauge on the lines, above 0 while something is wrong
    minutes: int  # above 0 in every minute this long: one missed status or REGISTER is not a page
    description: str


SIP_EDGE_ALARMS: tuple[SipEdgeAlarm, ...] = (
    SipEdgeAlarm(
        "sip-edge-not-answering", "SipEdgesNotAnswering", 3,
        "A SIP edge the dispatcher lists (SIP_EDGE_URL) has not answered its status for 3 minutes: calls in, "
        "out and transfers through it fail. An `up` that replaces the edge's host (a new dispatcher image, a "
        "changed trunk: the plan says so) takes it down for minutes and raises this too. `voicefleet status` names "
        "the edge and why; what to do: docs/sip.md#is-the-edge-up."),
    SipEdgeAlarm(
        "sip-edge-registration-refused", "SipEdgeRegistrationsRefused", 3,
        "A trunk's registrar has refused the SIP edge's REGISTER (or never answered: 408) for 3 minutes: no "
        "inbound call reaches the edge through that trunk. `voicefleet status` names the trunk and its answer; "
        "what to do: docs/sip.md#is-the-edge-up."),
)

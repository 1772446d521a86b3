"""FrontDoor (AWS): one global name over every region, by Route 53 latency records.

Per region, a Route 53 health check calls its dispatcher's `/healthz` over HTTPS (SNI and the
certificate's name: its dispatcherDomain) from Route 53's checkers around the world, and a latency
record answers the global name with a CNAME to that dispatcherDomain while the check passes. A
caller's resolver gets the region with the lowest latency from it among the healthy ones; when
every check fails, Route 53 answers as if all were healthy (it never answers nothing). The regions'
stacks are untouched: each keeps its own name, which the others call it by (REGIONS).
"""

from __future__ import annotations

import pulumi
import pulumi_aws.route53 as aws_route53
from pulumi_aws.provider import Provider

from stacks.config.front_door import FrontDoorRegion, FrontDoorSettings

HEALTHY_TEXT = '"status":"ok"'  # how /healthz starts when all is well (compact JSON, status first)
HEALTH_PATH = "/healthz"  # the dispatcher's: 200 while serving, 503 while draining (dispatcher/api/routers/ops.py)
# Route 53's faster interval (10 or 30 s; terraform-provider-aws route53 health_check.go) and three
# failures: a dead region leaves the answers about 30 s after its last success, plus the record's TTL.
REQUEST_INTERVAL_SECONDS = 10
FAILURE_THRESHOLD = 3
RECORD_TTL_SECONDS = 60


class FrontDoor(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: FrontDoorSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        provider = Provider(name, region=settings.provider_region, default_tags={"tags": dict(settings.tags)})
        super().__init__("voicefleet:aws:FrontDoor", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        checks = {region.name: self._region(name, settings, region) for region in settings.regions}
        self.outputs = {
            "cloud": "aws",
            "frontDoorUrl": f"https://{settings.domain}",
            "regions": [region.name for region in settings.regions],
            "healthCheckIds": checks,
        }
        self.register_outputs(self.outputs)

    def _region(self, name: str, settings: FrontDoorSettings, region: FrontDoorRegion) -> pulumi.Output[str]:
        """One region's health check and latency record; a region added or removed is these two."""
        child = pulumi.ResourceOptions(parent=self)
        check = aws_route53.HealthCheck(
            # A region whose store is down still answers /healthz 200 ("degraded": its replicas must
            # not be taken out), but callers should go elsewhere: healthy means `"status":"ok"`.
            f"{name}-{region.name}", type="HTTPS_STR_MATCH", search_string=HEALTHY_TEXT, fqdn=region.host, port=443,
            resource_path=HEALTH_PATH,
            enable_sni=True, request_interval=REQUEST_INTERVAL_SECONDS, failure_threshold=FAILURE_THRESHOLD,
            tags={"Name": f"{settings.prefix}-{region.name}"}, opts=child)
        aws_route53.Record(
            f"{name}-{region.name}", zone_id=settings.zone, name=settings.domain, type="CNAME",
            ttl=RECORD_TTL_SECONDS, records=[region.host], set_identifier=region.name,
            latency_routing_policies=[{"region": region.aws_region}], health_check_id=check.id,
            # The record's key (name, type, set identifier) is fixed and its zone forces a
            # replacement: created first, the replacement would collide with it.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        return check.id

"""FrontDoor (GCP): one global name over every region, by a global external Application Load Balancer.

Cloud DNS's geo routing can health-check only A/AAAA targets, internal load balancers or Internet
IP addresses (pulumi-gcp `dns.RecordSetRoutingPolicyGeoHealthCheckedTargets`: `external_endpoints`
are IP addresses), and a Cloud Run service has no address of its own: it is reached by name, its
`run.app` certificate covers no other. So a geo record cannot point at the regions' services, nor
drop one that fails. Google's own answer for a service in several regions is a global external
Application Load Balancer with a serverless NEG per region
(https://cloud.google.com/run/docs/multiple-regions): one anycast address, each request sent to the
nearest region, and, with Cloud Run service health, away from a region whose instances are not
ready (https://cloud.google.com/run/docs/configuring/configure-service-health; the regional stacks
set the readiness probe and keep an instance with `regions`). A Cloud DNS A record gives the global
name that address; a Google-managed certificate covers it.

Unlike the AWS front door, this one keeps a region whose store is down: service health follows the
instances' readiness, and the readiness probe is /healthz, which answers 200 `degraded` then. A
readiness that failed on `degraded` would stop Cloud Run sending the instances any new request, the
region's own bots' channels and the other regions' calls with the callers' ("Cloud Run stops
sending new traffic to the instance", run/docs/configuring/healthchecks, readiness probes): a store
outage would become the region's outage. So every preview says so (`DEGRADED_STAYS`), with the way
to take such a region out by hand.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp.compute as gcp_compute
import pulumi_gcp.dns as gcp_dns
import pulumi_gcp.projects as gcp_projects
from pulumi_gcp.provider import Provider

from stacks.config.front_door import FrontDoorRegion, FrontDoorSettings

RECORD_TTL_SECONDS = 300  # the anycast address never changes with the regions behind it
DEGRADED_STAYS = ("GCP front door: a region whose store is down stays in it (its readiness probe, /healthz, answers "
                  "200 degraded, and failing it would cut the region's own bots off too), while the AWS front door "
                  "takes such a region out; to send callers elsewhere during a store outage, remove the region from "
                  "frontDoorRegions and `pulumi up` this stack, then add it back (docs/regions.md, Front door)")


class FrontDoor(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(self, name: str, settings: FrontDoorSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        provider = Provider(name, project=settings.gcp_project, region=settings.provider_region,
                            default_labels=dict(settings.tags))
        super().__init__("voicefleet:gcp:FrontDoor", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        child = pulumi.ResourceOptions(parent=self)
        dns = gcp_projects.Service(f"{name}-dns", project=settings.gcp_project, service="dns.googleapis.com",
                                   disable_on_destroy=False, opts=child)
        backends = [self._backend(name, region) for region in settings.regions]
        # Serverless NEGs take no health check, port or backend timeout: Cloud Run's own apply.
        service = gcp_compute.BackendService(
            name, load_balancing_scheme="EXTERNAL_MANAGED",
            backends=[{"group": neg.id} for neg in backends], opts=child)
        url_map = gcp_compute.URLMap(name, default_service=service.id, opts=child)
        # Auto-named: a certificate for a new frontDoorDomain is created beside the old one.
        certificate = gcp_compute.ManagedSslCertificate(name, managed={"domains": [settings.domain]}, opts=child)
        proxy = gcp_compute.TargetHttpsProxy(name, url_map=url_map.id, ssl_certificates=[certificate.id], opts=child)
        address = gcp_compute.GlobalAddress(name, opts=child)
        gcp_compute.GlobalForwardingRule(name, target=proxy.id, ip_address=address.address, port_range="443",
                                         load_balancing_scheme="EXTERNAL_MANAGED", opts=child)
        gcp_dns.RecordSet(name, managed_zone=settings.zone, name=f"{settings.domain}.", type="A",
                          ttl=RECORD_TTL_SECONDS, rrdatas=[address.address],
                          opts=pulumi.ResourceOptions(parent=self, depends_on=[dns]))
        self.outputs = {
            "cloud": "gcp",
            "frontDoorUrl": f"https://{settings.domain}",
            "frontDoorAddress": address.address,
            "regions": [region.name for region in settings.regions],
        }
        pulumi.log.info(DEGRADED_STAYS, resource=self)
        self.register_outputs(self.outputs)

    def _backend(self, name: str, region: FrontDoorRegion) -> gcp_compute.RegionNetworkEndpointGroup:
        """One region's serverless NEG; a region added or removed is this one backend."""
        return gcp_compute.RegionNetworkEndpointGroup(
            f"{name}-{region.name}", region=region.gcp_region, network_endpoint_type="SERVERLESS",
            cloud_run={"service": region.service}, opts=pulumi.ResourceOptions(parent=self))

"""The Google APIs a GCP stack needs, enabled in its project.

A helper, not a component: the services register under the stack itself (their URNs predate this
module). They stay on at destroy: other stacks in the project may use them.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp.projects as gcp_projects

APIS = ("artifactregistry", "compute", "iam", "logging", "run", "secretmanager")
# With the coordination store: Memorystore for Valkey, the service connection policy that lets it
# create its Private Service Connect endpoints (Network Connectivity), and Service Consumer
# Management, which both list as a prerequisite
# (https://cloud.google.com/memorystore/docs/valkey/networking,
# https://cloud.google.com/vpc/docs/configure-service-connection-policies). A project that has them
# off fails the first `up` with SERVICE_DISABLED at the policy.
STORE_APIS = ("memorystore", "networkconnectivity", "serviceconsumermanagement")


def enable_apis(name: str, project: str, opts: pulumi.ResourceOptions, *,
                store: bool) -> list[gcp_projects.Service]:
    return [gcp_projects.Service(f"{name}-{api}", project=project, service=f"{api}.googleapis.com",
                                 disable_on_destroy=False, opts=opts)
            for api in (*APIS, *(STORE_APIS if store else ()))]

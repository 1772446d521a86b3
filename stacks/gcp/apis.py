"""The Google APIs a GCP stack needs, enabled in its project.

A helper, not a component: the services register under the stack itself (their URNs predate this
module). They stay on at destroy: other stacks in the project may use them.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

APIS = ("artifactregistry", "compute", "iam", "logging", "run", "secretmanager")


def enable_apis(name: str, project: str, opts: pulumi.ResourceOptions) -> list[gcp.projects.Service]:
    return [gcp.projects.Service(f"{name}-{api}", project=project, service=f"{api}.googleapis.com",
                                 disable_on_destroy=False, opts=opts) for api in APIS]

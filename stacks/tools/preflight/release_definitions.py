"""What a kept release needs on GCP to start again: its definition declared by the same `up` that lists it.

The dispatcher launches a session's VM with `instances.insert?sourceInstanceTemplate=<the release's
template>` and a Cloud Run session with `jobs.run` on the release's job
(dispatcher/machines/gce/provider.py, cloudrun/provider.py); a template or job the `up` did not
declare is deleted by it (Pulumi deletes what a program stops registering), and GCE answers an
insert from a template that does not exist, as Cloud Run a run of a job that does not exist, with
404 notFound: every session of that release would fail to start. So every reference `RELEASES`
lists must be a template or job this very run declares, labelled with that release, and a job must
not set `deletionProtection`, or retiring its release would fail at its delete
(terraform-provider-google cloudrunv2 `resourceCloudRunV2JobDelete`: "cannot destroy job without
setting deletion_protection=false and running `terraform apply`").
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from stacks.config.releases import VARIABLE
from stacks.tools.mocks import Registration, unwrap

SERVICE = "gcp:cloudrunv2/service:Service"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
JOB = "gcp:cloudrunv2/job:Job"


def listed(registrations: Iterable[Registration]) -> list[dict[str, object]]:
    """The releases the dispatcher's Cloud Run service lists in `RELEASES` (none: not a GCP stack)."""
    for reg in registrations:
        if reg.type == SERVICE:
            for container in unwrap(reg.inputs)["template"]["containers"]:
                for entry in container.get("envs", []):
                    if entry["name"] == VARIABLE:
                        releases: list[dict[str, object]] = json.loads(entry["value"])["releases"]
                        return releases
    return []


def _definitions(registrations: list[Registration]) -> dict[str, tuple[Registration, str]]:
    """Each declared template's and job's path's tail (`instanceTemplates/NAME`, `jobs/NAME`) -> its
    registration and its release label (the project and region are the stack's own)."""
    found: dict[str, tuple[Registration, str]] = {}
    for reg in registrations:
        release = str((unwrap(reg.inputs).get("labels") or {}).get("release", ""))
        if reg.type in (TEMPLATE, JOB):
            found[f"{'instanceTemplates' if reg.type == TEMPLATE else 'jobs'}/{reg.outputs['name']}"] = (reg, release)
    return found


def violations(registrations: Iterable[Registration]) -> list[str]:
    registered = list(registrations)
    definitions = _definitions(registered)
    found: list[str] = []
    for release in listed(registered):
        for transport, reference in dict(release["images"]).items():  # type: ignore[call-overload]
            declared = definitions.get("/".join(str(reference).rsplit("/", 2)[-2:]))
            if declared is None:
                found.append(f"{VARIABLE} lists release {release['name']} ({transport}) at {reference}, which this "
                             "`up` does not declare and so deletes: every session of it would fail to start (404)")
            elif declared[1] != release["name"]:
                found.append(f"{declared[0].name}: {VARIABLE} lists it for release {release['name']} but it is "
                             f"labelled release {declared[1]!r}: one definition per release, named after it")
            elif declared[0].type == JOB and unwrap(declared[0].inputs).get("deletionProtection"):
                found.append(f"{declared[0].name}: a release's job sets deletionProtection, so retiring the "
                             "release fails at its delete: set deletion_protection=False")
    return found

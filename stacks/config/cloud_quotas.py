"""A Compute Engine regional quota as Cloud Quotas answers a preview (`accountQuotas` on GCP).

pulumi_gcp's `cloudquota.get_s_quota_info` returns a quota's QuotaInfo: `dimensionsInfos`, ordered from
the most specific dimensions to the least, each with the locations it applies to and `details.value`, the
value in force (a string; -1 where unlimited). A region's value is the first entry naming the region and
no other dimension, or failing that the first with no dimension that applies there (the project's default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from stacks.config.quota_reads import Refused, settled

COMPUTE_SERVICE = "compute.googleapis.com"
QUOTA_INFO_READ = "gcp:cloudquota/getSQuotaInfo:getSQuotaInfo"  # pulumi_gcp cloudquota.get_s_quota_info


def region_value(dimensions_infos: Sequence[Mapping[str, Any]] | None, region: str) -> float | None:
    """The value in force in `region`, or None where nothing applies there or it is unlimited (the
    offline plan's mocks answer no entry at all)."""
    for info in dimensions_infos or ():
        dimensions = info.get("dimensions") or {}
        places = info.get("applicable_locations") or info.get("applicableLocations") or ()
        if dimensions.get("region", region) != region or (places and region not in places):
            continue
        if set(dimensions) - {"region"}:  # a service-specific dimension: a subset the stack's VMs are not known in
            continue
        for detail in info.get("details") or ():
            value = float(detail["value"])
            return None if value < 0 else value
        return None
    return None


def region_quota(project: str, region: str, quota_id: str,
                 invoke: pulumi.InvokeOutputOptions) -> pulumi.Output[float | Refused | None]:
    """The Compute Engine quota `quota_id` in force in `project`'s `region`, read by the preview through the
    stack's provider (`invoke`). Cloud Quotas bills the read to the credential's quota project, not to
    `project`: the API must be on there too (docs/operations.md). The data
    source calls the Cloud Quotas API before the stack makes anything, so the API must be on already
    (`gcloud services enable cloudquotas.googleapis.com`) and the deployer needs cloudquotas.quotas.get;
    without them the read is `Refused` and the note says what the stack needs (docs/pulumi.md, accountQuotas)."""
    return settled(QUOTA_INFO_READ, {"parent": f"projects/{project}", "service": COMPUTE_SERVICE, "quotaId": quota_id},
                   invoke, lambda info: region_value(info.get("dimensionsInfos"), region))

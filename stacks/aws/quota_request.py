"""`fargateVcpuQuotaRequest` (AWS; 0, the default, asks nothing): the stack asks Service Quotas to raise
the account's Fargate On-Demand vCPU quota (L-3032A538, stacks/config/ceiling.py) to the value, as code.

A value above the account's current one submits an increase request, which AWS grants or refuses on
its own time; a pending request shows as the value asked for. Least privilege: only with the key set
does the deployer need servicequotas:GetServiceQuota and servicequotas:RequestServiceQuotaIncrease
(the provider reads the quota and its pending request before asking); the dispatcher and the bots get
nothing. Removing the resource never lowers a quota: AWS has no call for that.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stacks.config.ceiling import FARGATE_VCPU_QUOTA_CODE


def fargate_vcpu_request(name: str, vcpus: int, opts: pulumi.ResourceOptions) -> aws.servicequotas.ServiceQuota | None:
    """The increase request, in the stack provider's region; None when the stack asks for nothing."""
    if vcpus <= 0:
        return None
    return aws.servicequotas.ServiceQuota(f"{name}-fargate-vcpu-quota", service_code="fargate",
                                          quota_code=FARGATE_VCPU_QUOTA_CODE, value=float(vcpus), opts=opts)

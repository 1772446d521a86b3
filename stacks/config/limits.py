"""Provider limits the settings validate and the offline preflight checks: one copy of each table.

The components read the same values (a password rule, a run-duration grace) from here: settings
are checked against them before any component exists, and no component is imported to do it.
"""

from __future__ import annotations

from dispatcher.machines.gce import GRACE_SECONDS as GCE_GRACE_SECONDS

# Fargate task sizes, CPU units -> the memory values (MiB) it accepts.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
# 256: 512 MiB, 1 GB, 2 GB (not 1.5 GB); 512: 1-4 GB; 1024: 2-8 GB; 2048: 4-16 GB; 4096: 8-30 GB, all
# in 1 GB steps; 8192: 16-60 GB in 4 GB steps; 16384: 32-120 GB in 8 GB steps.
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# CloudWatch Logs PutRetentionPolicy accepts only these periods (days).
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)

# ALB idle timeout, seconds. https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html
ALB_IDLE_TIMEOUT = (1, 4000)

# Secrets Manager RecoveryWindowInDays: 7..30; 0 is the provider's "force delete without recovery".
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html
SECRET_RECOVERY_DAYS = (7, 30)

# Compute Engine maxRunDuration: 30 s .. 120 days.
# https://cloud.google.com/compute/docs/instances/limit-vm-runtime
GCE_MAX_RUN_SECONDS = (30, 120 * 24 * 3600)
# The bot template adds the dispatcher's boot grace on top of the session limit (its
# maxRunDuration), so the session limit leaves room for it.
GCE_BOOT_GRACE_SECONDS = GCE_GRACE_SECONDS

# Cloud Run: the most memory each CPU limit allows (MiB); below 1 CPU a container gets at most 512 MiB.
# https://cloud.google.com/run/docs/configuring/services/memory-limits#cpu-minimum
CLOUD_RUN_MAX_MEMORY_MIB: dict[str, int] = {"1": 4096, "2": 8192, "4": 16384, "6": 24576, "8": 32768}
CLOUD_RUN_MIN_MEMORY_MIB = 512  # second-generation execution environment

# Cloud Run request timeout: at most 60 minutes; a WebSocket is a request and ends at the timeout.
# https://cloud.google.com/run/docs/configuring/request-timeout
CLOUD_RUN_MAX_TIMEOUT_SECONDS = 3600
# Cloud Run concurrent requests per instance: at most 1000; a WebSocket holds one for its lifetime.
# https://cloud.google.com/run/docs/about-concurrency
CLOUD_RUN_MAX_CONCURRENCY = 1000

# ElastiCache RBAC user passwords: 16-128 printable characters, none of space, `"`, `/` or `@`.
# https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html
ELASTICACHE_PASSWORD = (16, 128)


def valid_store_password(password: str) -> bool:
    """ElastiCache's rule for RBAC passwords (`/` and `@` would also break a redis:// URL)."""
    low, high = ELASTICACHE_PASSWORD
    return low <= len(password) <= high and password.isprintable() and not any(c in password for c in ' "/@')

# Azure Container Apps, consumption plan: CPU from 0.25 to 4 in steps of 0.25, memory twice the CPU in GiB.
# https://learn.microsoft.com/azure/container-apps/containers#allocations (unverified against a deploy)
CONTAINER_APPS_MIB_PER_CPU = 2048
CONTAINER_APPS_SIZES = tuple(range(512, 8192 + 1, 512))
CONTAINER_APPS_MAX_REPLICAS = 1000  # a revision's maxReplicas (Container Apps quotas)
# Container Apps' terminationGracePeriodSeconds may not exceed 600 s (the drain's ceiling).
CONTAINER_APPS_MAX_GRACE_SECONDS = 600
# Key Vault softDeleteRetentionInDays: 7..90, set at creation and never changed after ("Once set, the
# retention policy interval cannot be changed": the soft-delete overview, quoted in
# MicrosoftDocs/azure-docs#110047; ARM answers a change with BadRequest "The property
# \"softDeleteRetentionInDays\" has been set already and it can't be modified", as quoted by
# terraform-provider-azurerm internal/services/keyvault/key_vault_resource.go).
KEY_VAULT_SOFT_DELETE_DAYS = (7, 90)
# Log Analytics workspace retentionInDays: 30..730 on PerGB2018 (4..730 in the API; 30 is the floor billed).
LOG_ANALYTICS_RETENTION_DAYS = (30, 730)
# Azure Container Instances, Linux container group in most regions: 4 cores, 16 GiB.
ACI_MAX_CPU_UNITS = 4096
ACI_MAX_MEMORY_MIB = 16384
# Name rules of the globally unique Azure names (Microsoft.ContainerRegistry and Microsoft.KeyVault
# naming rules, https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
ACR_NAME = (5, 50)  # alphanumerics only
KEY_VAULT_NAME = (3, 24)  # alphanumerics and hyphens, a letter first, no "--", no trailing hyphen

# Artifact Registry versions one bot build pushes into its package: the image, the build cache
# (tag `buildcache`) and the revision index (`rev-<revision>`, images/component.py). A GCP stack's
# registry holds a superseded build by `mostRecentVersions` alone for the one `up` before its keep
# rule lists it (stacks/gcp/releases.py registry_keeps): the count must keep two builds.
AR_VERSIONS_PER_BUILD = 3
AR_BUILDS_HELD_BY_COUNT = 2

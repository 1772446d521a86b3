"""Delete locks (Azure) on a protected stack's stateful resources: the registry, the Key Vault, the store.

Pulumi's `protect` stops only Pulumi. A `CanNotDelete` management lock stops every deletion through
Azure Resource Manager, by anyone (the portal, `az`, a resource group delete) until an Owner or User
Access Administrator removes the lock, while updates still go through. Locks act on the control plane:
the dispatcher's container groups are not under one (it deletes those), and data-plane work (pushing
or purging images, a secret's versions) goes on. Each lock is itself protected: `pulumi destroy`
refuses until `pulumi state unprotect --all`, then deletes the locks before what they lock (each
depends on its resource and its `children`). SDK read: pulumi_azure_native/authorization/management_lock_by_scope.py
(API 2020-05-01; `level` CanNotDelete, `scope` a resource id).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_azure_native.authorization as azure_authorization

LEVEL = "CanNotDelete"
LOCK_NAME = "voicefleet-protect"


def delete_lock(name: str, scope: pulumi.Input[str], parent: pulumi.Resource,
                children: Sequence[pulumi.Resource] = ()) -> azure_authorization.ManagementLockByScope:
    """`children`: what deleting would touch under the locked resource (a database, a private
    endpoint's connection, through its DNS zone group): a lock also refuses those deletions, so it
    depends on them and a destroy deletes it first."""
    return azure_authorization.ManagementLockByScope(
        f"{name}-lock",
        scope=scope,
        level=LEVEL,
        lock_name=LOCK_NAME,
        notes="voicefleet: protect is on for this stack; docs/pulumi.md (Azure, Destroy) says how to remove it",
        opts=pulumi.ResourceOptions(parent=parent, protect=True, depends_on=list(children)),
    )

"""What a second `up` and a re-created stack would meet: forced replacements, in-place updates that
never reach the machine, and names the cloud keeps reserved after a destroy.

Each rule is written from the provider's own schema or the cloud's documented behaviour:
- terraform-provider-aws `ec2_instance.go`: `ami` is ForceNew; the relay's AMI comes from a
  `most_recent` lookup, so a newer Debian image would replace the relay on an unchanged `up`.
- pulumi-gcp `compute/instance.py`: `metadata` updates in place, and a `startup-script` key runs
  only at boot; `metadata_startup_script` is the ForceNew form (the VM is re-created and runs it).
- Secrets Manager DeleteSecret: a name stays taken for its recovery window (7-30 days), and
  CreateSecret refuses it ("already scheduled for deletion"); names must not end with "-" plus six
  characters (CreateSecret's Name rules: AWS appends that to form the ARN).
- Fixed names and ForceNew properties: a replacement is created before the old resource is
  deleted unless `delete_before_replace`, so a resource whose name we fix and whose ForceNew
  properties can change (a service connection policy's `network`: terraform-provider-google
  `resource_network_connectivity_service_connection_policy.go`) collides with itself by name.
- IAM `projects.roles.delete`: a deleted custom role can be undeleted for 7 days and its id stays
  reserved until 37 days after deletion (terraform-provider-google undeletes only the former).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stacks.tools.mocks import Invoke, Registration, unwrap

# (type, property) -> why a change replaces the resource.
FORCE_NEW = {("aws:ec2/instance:Instance", "ami"): "ami forces a replacement (terraform-provider-aws ec2_instance.go)"}
# Invokes whose answer changes without any change of ours.
FLOATING = {"aws:ec2/getAmi:getAmi": ("ami", "mostRecent")}
# Types whose name we fix -> (the name's input, a ForceNew input that may change): they must be
# deleted first. The Memorystore instance's endpoints network is immutable
# (terraform-provider-google resource_memorystore_instance.go `desired_auto_created_endpoints`,
# ForceNew), so a network move replaces the instance, whose id is fixed.
FIXED_NAME_FORCE_NEW = {
    "gcp:networkconnectivity/serviceConnectionPolicy:ServiceConnectionPolicy": ("name", "network"),
    "gcp:memorystore/instance:Instance": ("instanceId", "desiredAutoCreatedEndpoints"),
}
_ARN_SUFFIX_LIKE = re.compile(r"-[A-Za-z0-9]{6}$")


def replacement_violations(registrations: Iterable[Registration], invokes: Iterable[Invoke]) -> list[str]:
    floating = {prop for invoke in invokes for token, (prop, flag) in FLOATING.items()
                if invoke.token == token and invoke.args.get(flag)}
    found = []
    for reg in registrations:
        for (typ, prop), why in FORCE_NEW.items():
            if reg.type == typ and prop in floating and prop in reg.inputs and prop not in reg.ignore_changes:
                found.append(f"{reg.type} {reg.name}: {why} and comes from a lookup that floats (most recent): an "
                             f"unchanged `up` replaces it whenever a newer one is published; ignore changes to {prop}")
    return found


def in_place_violations(registrations: Iterable[Registration]) -> list[str]:
    return [f"{reg.type} {reg.name}: metadata['startup-script'] is updated in place and runs only at boot, so a "
            "change never reaches the running VM; use metadata_startup_script (re-creates the VM)"
            for reg in registrations
            if reg.type == "gcp:compute/instance:Instance" and "startup-script" in (reg.inputs.get("metadata") or {})]


def _reserved_name(reg: Registration) -> tuple[str, str] | None:
    """(name, how long it stays reserved after a delete) for resources whose name outlives them."""
    inputs = unwrap(reg.inputs)
    if reg.type == "aws:secretsmanager/secret:Secret":
        days = int(inputs.get("recoveryWindowInDays", 30))
        if days and inputs.get("name"):
            return str(inputs["name"]), f"its {days}-day recovery window"
    if reg.type == "gcp:projects/iAMCustomRole:IAMCustomRole":
        return str(inputs["roleId"]), "37 days (a deleted custom role's id is reserved)"
    return None


def name_violations(registrations: Iterable[Registration]) -> list[str]:
    found = []
    for reg in registrations:
        name = unwrap(reg.inputs).get("name") if reg.type == "aws:secretsmanager/secret:Secret" else None
        if isinstance(name, str) and _ARN_SUFFIX_LIKE.search(name):
            found.append(f"{reg.type} {reg.name}: the name {name!r} ends with '-' plus six characters, which "
                         "Secrets Manager reserves for the ARN suffix (partial-ARN lookups would be ambiguous)")
    return found


def recreate_violations(first: Iterable[Registration], second: Iterable[Registration]) -> list[str]:
    """`first` and `second` are the same stack created twice (the cloud's assigned ids differ): a
    reserved name that comes out the same both times makes the second creation fail."""
    before = {reg.urn: (reg, _reserved_name(reg)) for reg in first}
    found = []
    for reg in second:
        reserved = _reserved_name(reg)
        earlier = before.get(reg.urn, (reg, None))[1]
        if reserved is not None and earlier is not None and reserved[0] == earlier[0]:
            found.append(f"{reg.type} {reg.name}: the name {reserved[0]!r} is the same when the stack is re-created, "
                         f"and stays reserved for {reserved[1]} after a destroy: a re-create in that window fails")
    return found


def replacement_order_violations(registrations: Iterable[Registration]) -> list[str]:
    return [f"{reg.type} {reg.name}: its name is fixed and `{prop}` forces a replacement; created before the old "
            "one is deleted, the replacement collides with it by name: set delete_before_replace"
            for reg in registrations
            for typ, (name, prop) in FIXED_NAME_FORCE_NEW.items()
            if reg.type == typ and unwrap(reg.inputs).get(name) and not reg.delete_before_replace]

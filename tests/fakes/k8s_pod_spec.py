"""The API server's semantic checks of a pod spec, the ones its OpenAPI schema cannot express.

kubernetes/kubernetes pkg/apis/core/validation/validation.go (`ValidatePodSpec` and what it calls), as
far as a bot's pod reaches them; each refusal is a 422 Invalid naming the field as the API server does:
- `validateProjectionSources`: a projected `serviceAccountToken` needs a `path`, and its
  `expirationSeconds` is at least 10 minutes ("may not specify a duration less than 10 minutes") and at
  most 2^32 seconds;
- `ValidateVolumes`: volume names are unique;
- `ValidateVolumeMounts`: a mount names a volume of the pod (`Not found`), its `mountPath` is unique;
- `ValidateResourceRequirements`: a request is at most its limit ("must be less than or equal to cpu
  limit of 1"), and no quantity is negative;
- container names are unique across containers and init containers.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS = 10 * 60, 1 << 32
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(value: Any) -> Fraction:
    """A resource.Quantity's value ("500m", "1Gi", "2", "1e3"); ValueError for one the API server would not parse."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}")
    number, suffix = Fraction(match[1]), match[2] or ""
    if suffix in _BINARY:
        return number * 2 ** _BINARY[suffix]
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    return number * Fraction(10) ** exponent


def pod_spec_problems(spec: dict[str, Any]) -> list[str]:
    """Every semantic refusal of `spec` (a schema-valid PodSpec), each `<field>: <what>`; [] for none."""
    problems: list[str] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        where = f"spec.volumes[{i}]"
        if volume.get("name") in volumes:
            problems.append(f'{where}.name: Duplicate value: "{volume.get("name")}"')
        volumes.add(volume.get("name"))
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            token = source.get("serviceAccountToken")
            if token is None:
                continue
            at = f"{where}.projected.sources[{j}].serviceAccountToken"
            if not token.get("path"):
                problems.append(f"{at}.path: Required value")
            seconds = token.get("expirationSeconds", 3600)  # the defaulted value
            if seconds < MIN_TOKEN_SECONDS:
                problems.append(f"{at}.expirationSeconds: Invalid value: {seconds}: may not specify a duration "
                                "less than 10 minutes")
            elif seconds > MAX_TOKEN_SECONDS:
                problems.append(f"{at}.expirationSeconds: Invalid value: {seconds}: may not specify a duration "
                                "larger than 2^32 seconds")
    names: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            where = f"spec.{kind}[{i}]"
            if container.get("name") in names:
                problems.append(f'{where}.name: Duplicate value: "{container.get("name")}"')
            names.add(container.get("name"))
            problems += _mount_problems(where, container.get("volumeMounts") or [], volumes)
            problems += _resource_problems(f"{where}.resources", container.get("resources") or {})
    return problems


def _mount_problems(where: str, mounts: list[dict[str, Any]], volumes: set[str]) -> list[str]:
    problems, paths = [], set()
    for i, mount in enumerate(mounts):
        at = f"{where}.volumeMounts[{i}]"
        if mount.get("name") not in volumes:
            problems.append(f'{at}.name: Not found: "{mount.get("name")}"')
        if mount.get("mountPath") in paths:
            problems.append(f'{at}.mountPath: Invalid value: "{mount.get("mountPath")}": must be unique')
        paths.add(mount.get("mountPath"))
    return problems


def _resource_problems(where: str, resources: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    parsed: dict[str, dict[str, Fraction]] = {}
    for kind in ("limits", "requests"):
        parsed[kind] = {}
        for name, value in (resources.get(kind) or {}).items():
            try:
                parsed[kind][name] = quantity(value)
            except ValueError as exc:
                problems.append(f'{where}.{kind}[{name}]: Invalid value: "{value}": {exc}')
                continue
            if parsed[kind][name] < 0:
                problems.append(f'{where}.{kind}[{name}]: Invalid value: "{value}": must be greater than or equal to 0')
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            problems.append(f'{where}.requests: Invalid value: "{resources["requests"][name]}": must be less than '
                            f'or equal to {name} limit of {resources["limits"][name]}')
    return problems

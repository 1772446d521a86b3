"""The cluster's API server, as the bots' egress policy must leave it out.

A managed cluster's API server often has a public endpoint (GKE's and EKS' default), which the
bots' "public internet" rule would otherwise reach. GKE's kubeconfig names it by address
(`server: https://34.…`), so that address is left out on its own; a name (EKS, AKS) resolves to
addresses that change, which the stack cannot pin, so docs/kubernetes.md asks for the private
endpoint or `k8sBotEgressExcept` there. Anything this reader does not understand gives nothing:
the provider reads the kubeconfig itself and reports what is wrong with it.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import yaml


def active_cluster(kubeconfig: str, context: str | None) -> dict[str, Any]:
    """The `cluster` entry (server, CA, TLS name) the kubeconfig's context uses, or {} if unreadable."""
    document, name = _context_cluster(kubeconfig, context)
    return _named(document.get("clusters"), name)


def active_cluster_name(kubeconfig: str, context: str | None) -> str | None:
    """The name of the cluster entry the kubeconfig's context uses (an EKS ARN, GKE's `gke_…`), if it names one."""
    _, name = _context_cluster(kubeconfig, context)
    return name if isinstance(name, str) and name else None


def _context_cluster(kubeconfig: str, context: str | None) -> tuple[dict[str, Any], Any]:
    """The kubeconfig read ({} if unreadable), and the cluster its context (or its current one) names."""
    try:
        document = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        return {}, None
    if not isinstance(document, dict):
        return {}, None
    chosen = context or document.get("current-context")
    return document, _named(document.get("contexts"), chosen).get("cluster")


def api_server_address(kubeconfig: str, context: str | None) -> str | None:
    """The API server's IPv4 address when the kubeconfig's context names it by address, else None."""
    server = active_cluster(kubeconfig, context).get("server")
    if not isinstance(server, str):
        return None
    if "://" not in server:  # a bare `host:port` (client-go adds a scheme): only its host matters here
        server = f"https://{server}"
    try:
        host = urlsplit(server).hostname
        return str(ipaddress.IPv4Address(host)) if host else None
    except ValueError:  # a name, an IPv6 address, or no URL at all
        return None


def _named(entries: Any, name: Any) -> dict[str, Any]:
    """The `context`/`cluster` body of the kubeconfig list entry called `name`, or {}."""
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            for body in (entry.get("context"), entry.get("cluster")):
                if isinstance(body, dict):
                    return body
    return {}

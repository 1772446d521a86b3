"""The bots' trace export, pinned at admission (`pods` mode): a bot pod's `OTEL_*` env is the stack's collector.

The dispatcher tells every pod it makes the trace collector it has itself (otelExporterOtlpEndpoint:
OTEL_EXPORTER_OTLP_ENDPOINT; dispatcher/machines/k8s/settings.py `told_bots`), and the collector's headers,
a credential, reach the bot from the bots' Secret by `envFrom`. A leaked dispatcher token could otherwise
create a pod whose plain env points the export, and with it those headers, at a host of its own (a plain
value wins over `envFrom`'s). So each env entry named `OTEL_*` must be one the dispatcher sets, as a plain
value (no `valueFrom`: an annotation's `fieldRef` is the pod maker's to write), equal to what this `up` gives
the dispatcher, or what the last `up` gave it while its replicas roll. Any other `OTEL_*` name is refused:
another signal's endpoint, the headers in plain, an exporter or a configurator of the pod's choosing. A pod
without them exports nothing, and is admitted. A pod made before an `up` that changes the endpoint is
refused nothing (a policy judges creates and updates, and the spec cannot change).

The values come from the environment the stack gives the dispatcher, read as the dispatcher reads it
(stacks/k8s/pool_template.py `dispatcher_settings`): a config change moves both in the same `up`.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.machines.k8s.pods import unexpanded
from stacks.k8s.cel import literal, quoted, writable
from stacks.k8s.pool_template import dispatcher_settings

OTEL = "OTEL_"  # OpenTelemetry's SDK reads its settings by this prefix, the exporters' among them


def told_traces(environment: Mapping[str, str]) -> dict[str, str]:
    """The `OTEL_*` variables the dispatcher whose env is `environment` tells every pod it makes."""
    return {name: value for name, value in dispatcher_settings(environment).told_bots.items() if name.startswith(OTEL)}


def admitted(current: Mapping[str, str], last: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Each name this `up`'s or the last one's dispatcher sets, with the values a pod may carry. A value read back
    that CEL cannot hold (an output edited by hand) is left out: the last `up` wrote none (stacks/config/k8s.py)."""
    return {name: tuple(dict.fromkeys(value for value in (current.get(name), last.get(name))
                                      if value is not None and writable(value)))
            for name in dict.fromkeys([*current, *last])}


def trace_env(values: Mapping[str, tuple[str, ...]]) -> str:
    """CEL on a container `c`: every `OTEL_*` entry of its env is a name of `values`, by a plain value it lists
    (as `pod_body` writes it: `$` doubled, dispatcher/machines/k8s/pods.py `unexpanded`)."""
    otel = f"!e.name.startsWith({literal(OTEL)})"
    if values:
        table = "{" + ", ".join(f"{literal(name)}: {quoted(unexpanded(value) for value in listed)}"
                                for name, listed in values.items()) + "}"
        otel += (f" || (e.name in {table} && has(e.value) && !has(e.valueFrom) && "
                 f"e.value in {table}[e.name])")
    return f"(!has(c.env) || c.env.all(e, {otel}))"


def described(values: Mapping[str, tuple[str, ...]]) -> str:
    """The refusal's message: what the stack admits, and where it comes from."""
    if not values:
        return ("a bot pod sets no OTEL_* variable: the stack configures no trace collector "
                "(otelExporterOtlpEndpoint)")
    named = "; ".join(f"{name}: {' or '.join(listed)}" for name, listed in values.items())
    return (f"a bot pod's OTEL_* variables are the trace collector the stack gives the dispatcher "
            f"(otelExporterOtlpEndpoint), each as a plain value, and no other OTEL_* name ({named})")

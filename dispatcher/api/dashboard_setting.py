"""DASHBOARD_ENABLED, read apart from the status view that serves the page: the configuration check
(dispatcher/factory.py `configuration_problems`) reads it without importing the view's reserve,
store and release machinery."""

from __future__ import annotations

from collections.abc import Mapping

from voicefleet_settings.read import setting_bool


def dashboard_enabled(env: Mapping[str, str], *, local: bool) -> bool:
    """DASHBOARD_ENABLED: true serves GET /dashboard, false does not; unset, a local dispatcher serves it
    and a cloud one does not (the data behind it needs the admin key either way)."""
    return setting_bool(env, "DASHBOARD_ENABLED", default=local)  # the mode, which the catalogue cannot hold

"""Releases: named, immutable bot versions, the traffic each takes, and how a session gets one (docs/releases.md)."""

"""Releases: named, immutable bot versions, the traffic each takes, and the judgement that rolls a
canary back when callers suffer on it.

Lives here: what a release is, its weight, the choice of release for a session, its health. Not
here: how a provider launches a release's image (machines/), the admin HTTP shapes (api/).
"""

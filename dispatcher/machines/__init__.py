"""Machines: one place that runs one bot per session. `base.Machines` is the protocol; each provider
is a subpackage with its cloud's plumbing beside it (local processes, ECS Fargate with AWS signing and
credentials, Compute Engine, Fly Machines), each with its warm-reserve variant.

Lives here: launching, looking up, stopping and listing machines, and the environment a bot is
handed. Not here: rooms and media (media/), the session lifecycle (sessions/), the reserve's policy
(reserve/).
"""

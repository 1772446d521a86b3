"""voicefleet's Pulumi program: typed stack settings and one component per cloud.

`infra/__main__.py` (Pulumi.yaml's `main`, its own uv project) reads `settings.load()`, builds
`AwsStack` or `GcpStack` and exports its outputs. `plan` renders a stack's resources offline under mocks for review.
"""

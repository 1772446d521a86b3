"""voicefleet's Pulumi program: typed stack settings and one component per cloud.

`__main__.py` (repository root) reads `settings.load()`, builds `AwsStack` or `GcpStack` and exports
its outputs. `plan` renders a stack's resources offline under mocks for review.
"""

"""voicefleet's Pulumi program, by cloud and by concern (docs/architecture.md, "The Pulumi program's layers").

`infra/__main__.py` (Pulumi.yaml's `main`, its own uv project) reads `config.settings.load()`,
builds `aws.stack.AwsStack` or `gcp.stack.GcpStack` and exports its outputs. `config/` reads and
validates the stack's config and imports no component; `contract` and `turn_server` are what both
clouds share; `aws/` and `gcp/` hold one component per file; `tools/` is what people run (the
offline plan, the drain, the Pipecat Cloud import), with `plan`, `drain` and `import_pcc` here as
the shims of `python -m stacks.<tool>`.
"""

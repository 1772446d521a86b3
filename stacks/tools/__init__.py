"""What people run against the program, never `pulumi up`: the top layer of stacks/.

`plan` renders a stack offline under `mocks` after the `preflight` checks; `drain` removes the
machines the dispatcher launched before a destroy; `import_pcc` turns a Pipecat Cloud
`pcc-deploy.toml` into stack config. `python -m stacks.plan`, `stacks.drain` and
`stacks.import_pcc` (the shims at the root of stacks/) run them.
"""

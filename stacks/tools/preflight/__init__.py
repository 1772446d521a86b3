"""What the real tools check before anything is created, modelled offline (mocks check none of it).

`cli_config` is the Pulumi CLI's project/stack configuration validation; `names` and `sizes` are
the AWS and GCP rules on names, labels and sizes, applied to the resources the program registers.
Every rule cites the source it was written from. `stacks.plan` runs them for each stack it
renders; tests/infra/tools/preflight/ runs them for every example stack.
"""

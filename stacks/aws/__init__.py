"""voicefleet on AWS: one Pulumi component or helper per file, composed by `stack.AwsStack`.

Components (each a `voicefleet:aws:*` resource or a helper that registers under its caller):
`registry` (ECR), `network` (VPC, public subnets, the bots' security group), `secrets` (Secrets
Manager, read by reference), `cluster` (ECS), `bot_runtime` (the bot task definition RunTask
starts), `relay` (coturn on EC2), `store` (ElastiCache for several replicas; `store_access`, its
user's access string), `balancer` (the ALB in front of the dispatcher) and `dispatcher` (its Fargate
service). `container` and `iam` are the shapes they share. Components import config and the shared
contracts, never `stack`.
"""

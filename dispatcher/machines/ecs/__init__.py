"""`MACHINES=ecs`: an ECS task on Fargate per session, and the AWS plumbing it needs (SigV4 signing,
the credential chain, the JSON 1.1 API).
"""

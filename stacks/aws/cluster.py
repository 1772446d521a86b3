"""Cluster (AWS): the ECS cluster every bot task and the dispatcher's service run on.

A helper, not a component: the cluster registers under the stack itself (its URN predates this
module). Both Fargate capacity providers are attached, so ECS_CAPACITY_PROVIDERS can pick either
per RunTask without an infrastructure change.
"""

from __future__ import annotations

import pulumi
import pulumi_aws.ecs as aws_ecs


def ecs_cluster(name: str, *, physical_name: str, container_insights: bool,
                opts: pulumi.ResourceOptions) -> aws_ecs.Cluster:
    cluster = aws_ecs.Cluster(name, name=physical_name, settings=[{
        "name": "containerInsights", "value": "enabled" if container_insights else "disabled"}], opts=opts)
    aws_ecs.ClusterCapacityProviders(
        name, cluster_name=cluster.name, capacity_providers=["FARGATE", "FARGATE_SPOT"],
        default_capacity_provider_strategies=[{"capacity_provider": "FARGATE", "weight": 1}], opts=opts)
    return cluster

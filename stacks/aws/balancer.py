"""Balancer (AWS): the internet-facing ALB in front of the dispatcher, and the two security groups
on its path (clients -> ALB on 443, or 80 in a plain-HTTP dev stack -> dispatcher tasks on 8080).

A helper, not a component: everything registers under the `Dispatcher` component that creates it
(the URNs predate this module), named from the dispatcher's own name. The ALB's idle timeout (60 s)
is shorter than the dispatcher's keep-alive (65 s, passed as KEEP_ALIVE_SECONDS): the ALB must be
the side that closes idle connections, or it forwards a request onto a connection uvicorn just
closed and the client sees a 502.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.ec2 as aws_ec2
import pulumi_aws.lb as aws_lb
import pulumi_aws.route53 as aws_route53
import pulumi_aws.vpc as aws_vpc

from stacks.config.phone import deregistration_delay


@dataclass(frozen=True)
class BalancerArgs:
    name: str  # ≤ 32 characters (settings bound the stack name; preflight checks it)
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    port: int  # the dispatcher's container port
    idle_timeout_seconds: int
    certificate_arn: str | None
    allowed_cidrs: Sequence[str]
    max_session_seconds: int  # a replaced task keeps relaying its calls this long (and a margin)
    domain: str | None = None  # dispatcherDomain, which bots dial
    zone_id: str | None = None  # its Route 53 zone: the record is written here and awaited


def _rule(kind: str, name: str, parent: pulumi.Resource, **kwargs: Any) -> None:
    cls = aws_vpc.SecurityGroupIngressRule if kind == "ingress" else aws_vpc.SecurityGroupEgressRule
    cls(name, opts=pulumi.ResourceOptions(parent=parent), **kwargs)


class Balancer:
    # https://<dispatcherDomain> with a certificate (the name it covers, never the ALB's own
    # *.elb.amazonaws.com, which would fail every client's TLS name check); else http://<ALB name>.
    url: pulumi.Output[str]
    dns_name: pulumi.Output[str]  # what dispatcherDomain's DNS record points at
    target_group_arn: pulumi.Output[str]
    # CloudWatch's dimensions of the target group's metrics (HealthyHostCount: the dispatcher-down alarm).
    target_group_arn_suffix: pulumi.Output[str]
    balancer_arn_suffix: pulumi.Output[str]
    app_security_group_id: pulumi.Output[str]  # the dispatcher's tasks: reachable from the ALB only
    ready: list[pulumi.Resource]  # what the service waits for: the forwarding listener, the DNS record

    def __init__(self, name: str, args: BalancerArgs, *, parent: pulumi.Resource) -> None:
        child = pulumi.ResourceOptions(parent=parent)
        alb_sg, app_sg = self._security_groups(name, args, parent)
        # Named explicitly: an auto-name is the logical name plus 8 characters, which passes the
        # 32-character limit of load balancer and target group names (stacks/tools/preflight/names.py).
        balancer = aws_lb.LoadBalancer(
            name,
            name=args.name,
            load_balancer_type="application",
            internal=False,
            subnets=list(args.subnet_ids),
            security_groups=[alb_sg.id],
            idle_timeout=args.idle_timeout_seconds,
            drop_invalid_header_fields=True,
            opts=child,
        )
        # A prefix (at most 6 characters) plus a generated suffix: a changed target group can be
        # created before the old one is deleted, and the name stays within 32 characters.
        targets = aws_lb.TargetGroup(
            name,
            name_prefix="vf-",
            port=args.port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=deregistration_delay(args.max_session_seconds),  # calls end first
            health_check={"path": "/healthz", "matcher": "200", "interval": 15, "timeout": 5,
                          "healthy_threshold": 2, "unhealthy_threshold": 3},
            opts=child,
        )
        listener = self._listeners(name, args, balancer, targets, child)
        self.dns_name = balancer.dns_name
        self.target_group_arn = targets.arn
        self.target_group_arn_suffix = targets.arn_suffix
        self.balancer_arn_suffix = balancer.arn_suffix
        self.app_security_group_id = app_sg.id
        self.ready = [listener, *self._record(name, args, balancer, child)]

    @staticmethod
    def _security_groups(name: str, args: BalancerArgs,
                         parent: pulumi.Resource) -> tuple[aws_ec2.SecurityGroup, aws_ec2.SecurityGroup]:
        child = pulumi.ResourceOptions(parent=parent)
        alb_sg = aws_ec2.SecurityGroup(f"{name}-alb", vpc_id=args.vpc_id, description="voicefleet dispatcher ALB",
                                       tags={"Name": f"{name}-alb"}, opts=child)
        app_sg = aws_ec2.SecurityGroup(f"{name}-app", vpc_id=args.vpc_id, description="voicefleet dispatcher tasks",
                                       tags={"Name": f"{name}-app"}, opts=child)
        port = args.port
        for listen in (443, 80) if args.certificate_arn else (80,):
            for index, cidr in enumerate(args.allowed_cidrs):
                _rule("ingress", f"{name}-alb-in-{listen}-{index}", parent, security_group_id=alb_sg.id,
                      ip_protocol="tcp", from_port=listen, to_port=listen, cidr_ipv4=cidr)
        _rule("egress", f"{name}-alb-out", parent, security_group_id=alb_sg.id, ip_protocol="tcp", from_port=port,
              to_port=port, referenced_security_group_id=app_sg.id)
        _rule("ingress", f"{name}-app-in", parent, security_group_id=app_sg.id, ip_protocol="tcp", from_port=port,
              to_port=port, referenced_security_group_id=alb_sg.id)
        # AWS APIs, Daily and the registry are all HTTPS.
        _rule("egress", f"{name}-app-out-https", parent, security_group_id=app_sg.id, ip_protocol="tcp",
              from_port=443, to_port=443, cidr_ipv4="0.0.0.0/0")
        return alb_sg, app_sg

    def _listeners(self, name: str, args: BalancerArgs, balancer: aws_lb.LoadBalancer, targets: aws_lb.TargetGroup,
                   child: pulumi.ResourceOptions) -> aws_lb.Listener:
        """The listener that forwards to the dispatcher (HTTPS with a certificate, which also
        redirects plain HTTP to it; else plain HTTP) and sets `url` to match."""
        forward: list[aws_lb.ListenerDefaultActionArgsDict] = [{"type": "forward", "target_group_arn": targets.arn}]
        if not args.certificate_arn:
            self.url = pulumi.Output.concat("http://", balancer.dns_name)
            return aws_lb.Listener(f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                                   default_actions=forward, opts=child)
        listener = aws_lb.Listener(f"{name}-https", load_balancer_arn=balancer.arn, port=443, protocol="HTTPS",
                                   certificate_arn=args.certificate_arn,
                                   ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                                   default_actions=forward, opts=child)
        redirect: list[aws_lb.ListenerDefaultActionArgsDict] = [{"type": "redirect", "redirect": {
            "port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}]
        aws_lb.Listener(f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                        default_actions=redirect, opts=child)
        # dispatcherDomain is the name the certificate is issued for. Without it (a certificate and
        # no channel) only the ALB's name is known, which the certificate does not cover.
        self.url = pulumi.Output.from_input(f"https://{args.domain}") if args.domain else pulumi.Output.concat(
            "https://", balancer.dns_name)
        return listener

    @staticmethod
    def _record(name: str, args: BalancerArgs, balancer: aws_lb.LoadBalancer,
                child: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """Bots dial wss://<dispatcherDomain>: until that name points at this ALB every bot the
        reserve starts fails its channel. With the zone given, the record is written here and the
        service (which starts the reserve) waits for it."""
        if not (args.zone_id and args.domain):
            return []
        return [aws_route53.Record(name, zone_id=args.zone_id, name=args.domain, type="A",
                                   aliases=[{"name": balancer.dns_name, "zone_id": balancer.zone_id,
                                             "evaluate_target_health": True}], opts=child)]

"""Where a stack's alarms notify (docs/pulumi.md): optional, since a stack without a target still
shows its alarms' states in the console; the values are checked here so a typo fails the preview,
not the first alarm."""

from __future__ import annotations

import re

from stacks.config.reader import Reader

AWS_TOPIC_KEY = "alarmTopicArn"
GCP_CHANNELS_KEY = "alarmNotificationChannels"
# What every cloud's alarms fire at. A warm claim answers in about a second and a cold start in tens of
# seconds (docs/reserve.md): with a reserve, a p95 past 10 s means callers wait on cold starts; without
# one every start is cold and only a p95 past 90 s is news.
FAILURE_RATE_PERCENT = 10.0
READY_P95_SECONDS_WARM = 10.0
READY_P95_SECONDS_COLD = 90.0
# AWS's own advice for a serverless cache's data maximum: an alarm at 75 % of it (docs.aws.amazon.com/
# AmazonElastiCache/latest/red-ug/Scaling.html, "Setting scaling limits to manage costs"). At the maximum
# ElastiCache evicts keys with a TTL first, and every record the dispatcher keeps has one.
STORE_FULL_PERCENT = 75.0
_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_CHANNEL = re.compile(r"^projects/(?P<project>[a-z0-9-]+)/notificationChannels/[0-9]+$")


def topic_arn(cfg: Reader, region: str) -> str | None:
    """An SNS topic in the stack's region (CloudWatch alarms notify topics of their own region)."""
    arn = cfg.optional(AWS_TOPIC_KEY)
    if arn is None:
        return None
    found = _TOPIC.match(arn)
    if found is None:
        raise cfg.fail(AWS_TOPIC_KEY, f"must be an SNS topic ARN like arn:aws:sns:{region}:123456789012:alarms "
                                      f"(got {arn!r})")
    if found["region"] != region:
        raise cfg.fail(AWS_TOPIC_KEY, f"must be a topic in aws:region={region} (got one in {found['region']})")
    return arn


def notification_channels(cfg: Reader, project: str) -> tuple[str, ...]:
    """Cloud Monitoring notification channels by full name (`gcloud beta monitoring channels list`)."""
    channels = cfg.string_list(GCP_CHANNELS_KEY)
    for channel in channels:
        found = _CHANNEL.match(channel)
        if found is None:
            raise cfg.fail(GCP_CHANNELS_KEY, f"each must be projects/<project>/notificationChannels/<id> "
                                             f"(got {channel!r})")
        if found["project"] != project:
            raise cfg.fail(GCP_CHANNELS_KEY, f"{channel!r} is not in gcp:project={project}")
    return channels

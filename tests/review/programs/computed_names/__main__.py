"""Builds on names the provider fills (auto-names) and on a DNS name only AWS knows after creation."""

import pulumi
import pulumi_aws as aws

jobs = aws.sqs.Queue("jobs", visibility_timeout_seconds=60)
# A resource declared inside an apply on the provider-filled name: a real preview knows the auto-name.
jobs.name.apply(lambda name: aws.cloudwatch.MetricAlarm(
    f"{name}-depth", comparison_operator="GreaterThanThreshold", evaluation_periods=1, threshold=100,
    metric_name="ApproximateNumberOfMessagesVisible", namespace="AWS/SQS", period=300, statistic="Average",
    dimensions={"QueueName": name},
))
front = aws.lb.LoadBalancer("front", load_balancer_type="application", subnets=["subnet-0a", "subnet-0b"])
# The DNS name is not known before the load balancer exists: unknown, as in `pulumi preview`.
aws.sns.Topic("jobs-events", display_name=jobs.name.apply(lambda name: f"events of {name}"),
              tags={"url": pulumi.Output.format("https://{0}/queues/{1}", front.dns_name, jobs.name)})

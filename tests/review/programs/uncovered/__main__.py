"""Resources of a provider no policy knows (a made-up `acme` provider), inside a component, beside AWS ones."""

import pulumi
import pulumi_aws as aws


class Widget(pulumi.CustomResource):
    def __init__(self, name: str, size: int, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("acme:widgets:Widget", name, {"size": size}, opts)


class Shop(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("acme:shop:Shop", name)
        for size in (1, 2):
            Widget(f"{name}-widget-{size}", size, pulumi.ResourceOptions(parent=self))


Shop("front")
aws.s3.Bucket("stock")
aws.sns.Topic("orders")
aws.sns.Topic("returns")

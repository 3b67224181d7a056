"""Calls a data source of a provider whose SDK is not installed (no typed result to answer from)."""

import pulumi

stock = pulumi.runtime.invoke("acme:inventory/getStock:getStock", {"sku": "W-1"}).value
pulumi.export("stock", stock)

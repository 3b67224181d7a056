"""A storage account pinned to API version 2023-01-01, the way azure-native v2 programs pin one."""

import pulumi
from pulumi_azure_native import resources
from pulumi_azure_native.storage import v20230101 as storage

group = resources.ResourceGroup("legacy")
account = storage.StorageAccount(
    "legacydata",
    resource_group_name=group.name,
    kind="StorageV2",
    sku={"name": "Standard_LRS"},
    allow_blob_public_access=True,
    minimum_tls_version="TLS1_0",
    enable_https_traffic_only=True,
)

pulumi.export("account", account.name)

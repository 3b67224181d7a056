"""Resource type tokens as rules and the review compare them. Shipped into the program's interpreter with
`mocks.py` (policies/review/sandbox.py), so: standard library only."""

from __future__ import annotations

import re
from typing import Final

# azure-native's explicit API-version modules (`pulumi_azure_native.storage.v20230101`, many in v2,
# fewer in v3) declare the same Azure resource under a versioned token,
# `azure-native:storage/v20230101:StorageAccount`: https://www.pulumi.com/registry/packages/azure-native/version-guide/
_AZURE_API_VERSION: Final = re.compile(r"^(azure-native:[^:/]+)/v\d{8}(?:preview|privatepreview)?:")


def canonical_type(token: str) -> str:
    """The type token rules are declared with: an azure-native resource pinned to an API version is the
    same Azure resource, so it gets the same rules (a program must not escape review by importing
    `...storage.v20230101`). An older API version may shape a property differently; rules then find it
    missing or not the compliant value, which fails closed."""
    return _AZURE_API_VERSION.sub(r"\1:", token)

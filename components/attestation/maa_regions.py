"""Microsoft Azure Attestation host names: short region codes and the regional shared providers.

An attestation provider's `attestUri` is `https://<provider name>.<short region code>.attest.azure.net`,
and the regional shared provider of a region is `https://shared<code>.<code>.attest.azure.net`
(e.g. West Europe: `https://sharedweu.weu.attest.azure.net`), never the full region name.

Sources (the short codes are Microsoft's, not derived from the region name):
- "Basic concepts", Regional shared provider table (Region -> Attest Uri):
  https://learn.microsoft.com/azure/attestation/basic-concepts#regional-shared-provider
- Microsoft's published confidential-VM release policy, which lists the shared authorities per region
  (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json),
  for regions the basic-concepts table does not list (`dewc` Germany West Central, `frc` France Central).

Only regions with a documented code are listed; an unlisted region is refused rather than guessed
(add its row with the source that gives its code).
"""

from __future__ import annotations

from typing import Final

# Azure location name -> MAA short region code.
SHORT_CODES: Final[dict[str, str]] = {
    # basic-concepts, Regional shared provider table
    "eastus": "eus",
    "westus": "wus",
    "uksouth": "uks",
    "ukwest": "ukw",
    "canadaeast": "cae",
    "canadacentral": "cac",
    "northeurope": "neu",
    "westeurope": "weu",
    "eastus2": "eus2",
    "centralus": "cus",
    # confidential-computing-cvm skr-policy.json authorities
    "germanywestcentral": "dewc",
    "francecentral": "frc",
}


def _normalize(location: str) -> str:
    """`West Europe` and `westeurope` name the same location (ARM accepts both)."""
    return "".join(str(location).split()).lower()


def short_code(location: str) -> str:
    """The MAA short region code of an Azure location (`westeurope` -> `weu`)."""
    code = SHORT_CODES.get(_normalize(location))
    if code is None:
        raise ValueError(
            f"no documented Microsoft Azure Attestation region code for location {location!r}; "
            "add it to components/attestation/maa_regions.py with its source "
            "(https://learn.microsoft.com/azure/attestation/basic-concepts#regional-shared-provider)"
        )
    return code


def attest_uri(provider: str, location: str) -> str:
    """The `attestUri` Azure assigns a provider named `provider` in `location`."""
    return f"https://{provider}.{short_code(location)}.attest.azure.net"


def shared_endpoint(location: str) -> str:
    """The regional shared provider of `location` (`https://sharedweu.weu.attest.azure.net`)."""
    code = short_code(location)
    return f"https://shared{code}.{code}.attest.azure.net"

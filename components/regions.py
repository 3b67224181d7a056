"""Region names per cloud, so that config typos fail before anything is declared.

Sources (public region lists, checked 2026-11):
- AWS: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
- Azure: https://learn.microsoft.com/azure/reliability/regions-list
- GCP: https://cloud.google.com/compute/docs/regions-zones

A region missing here is a one-line addition; an unknown region is refused rather than guessed.
"""

from __future__ import annotations

from typing import Final, Literal

Cloud = Literal["aws", "azure", "gcp"]

CLOUD_LABELS: Final[dict[str, str]] = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}

REGIONS: Final[dict[str, frozenset[str]]] = {
    "aws": frozenset(
        """
        us-east-1 us-east-2 us-west-1 us-west-2 us-gov-east-1 us-gov-west-1
        af-south-1 ap-east-1 ap-east-2 ap-south-1 ap-south-2 ap-southeast-1 ap-southeast-2
        ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7
        ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1
        eu-central-1 eu-central-2 eu-west-1 eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1
        il-central-1 me-south-1 me-central-1 mx-central-1 sa-east-1
        """.split()
    ),
    "azure": frozenset(
        """
        eastus eastus2 westus westus2 westus3 centralus northcentralus southcentralus westcentralus
        canadacentral canadaeast brazilsouth mexicocentral chilecentral
        northeurope westeurope uksouth ukwest francecentral francesouth germanywestcentral
        germanynorth switzerlandnorth switzerlandwest norwayeast norwaywest swedencentral
        polandcentral italynorth spaincentral austriaeast belgiumcentral
        eastasia southeastasia japaneast japanwest koreacentral koreasouth australiaeast
        australiasoutheast australiacentral centralindia southindia westindia indonesiacentral
        malaysiawest newzealandnorth uaenorth uaecentral qatarcentral israelcentral southafricanorth
        """.split()
    ),
    "gcp": frozenset(
        """
        us-central1 us-east1 us-east4 us-east5 us-south1 us-west1 us-west2 us-west3 us-west4
        northamerica-northeast1 northamerica-northeast2 northamerica-south1
        southamerica-east1 southamerica-west1
        europe-west1 europe-west2 europe-west3 europe-west4 europe-west6 europe-west8 europe-west9
        europe-west10 europe-west12 europe-north1 europe-north2 europe-central2 europe-southwest1
        asia-east1 asia-east2 asia-northeast1 asia-northeast2 asia-northeast3 asia-south1
        asia-south2 asia-southeast1 asia-southeast2 australia-southeast1 australia-southeast2
        me-west1 me-central1 me-central2 africa-south1
        """.split()
    ),
}


def is_region(cloud: str, region: str) -> bool:
    return region in REGIONS.get(cloud, frozenset())

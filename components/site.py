"""What a cloud site is given: the slice of a collaboration that lives on one cloud.

Each cloud package (`components.aws`, `components.azure`, `components.gcp`) exposes one `Site`
ComponentResource taking `SiteArgs`; it declares that cloud's network, audit, workload hosts and,
for every party on the cloud, the party's data key (bound to the approved measurements and to the
workload identity on the same cloud) and the party's encrypted storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, get_args

from components.model import Classification, Collaboration, Environment, Party, WorkloadHost
from components.regions import Cloud

# The explicit non-party marker: resources serving every party (network, hosts, disk/audit/cluster
# keys, the audit trail) carry `party: shared`. Rules treat it as "not a party's data store"; any
# store without a `party` tag at all fails closed. Shared resources may live only where the
# workload runs (the residency rule's `shared` entry).
SHARED_PARTY: Final = "shared"


@dataclass(frozen=True)
class SiteArgs:
    environment: Environment
    collaboration: Collaboration
    cloud: Cloud
    log_retention_days: int = 365

    @property
    def parties(self) -> list[Party]:
        return [p for p in self.collaboration.parties if p.cloud == self.cloud]

    @property
    def hosts(self) -> list[WorkloadHost]:
        return [h for h in self.collaboration.workload.hosts if h.cloud == self.cloud]

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    def tags(self, party: Party | None = None) -> dict[str, str]:
        """Required tags/labels (lowercase values, valid on all three clouds)."""
        tags = {
            "collaboration": self.collaboration.name,
            "environment": self.environment,
            "managed-by": "ccp",
            "measurements": self.collaboration.measurements.fingerprint(),
        }
        if party is not None:
            tags["party"] = party.name
            tags["data-classification"] = party.data_classification
        return tags

    def shared_tags(self) -> dict[str, str]:
        """Tags of resources serving every party: `party: shared` and the most sensitive
        classification of the collaboration (what they may touch)."""
        order = list(get_args(Classification))
        highest = max((p.data_classification for p in self.collaboration.parties), key=order.index, default=order[-1])
        return {**self.tags(), "party": SHARED_PARTY, "data-classification": highest}

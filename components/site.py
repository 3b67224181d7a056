"""What a cloud site is given: the slice of a collaboration that lives on one cloud.

Each cloud package (`components.aws`, `components.azure`, `components.gcp`) exposes one `Site`
ComponentResource taking `SiteArgs`; it declares that cloud's network, audit, workload hosts and,
for every party on the cloud, the party's data key (bound to the approved measurements and to the
workload identity on the same cloud) and the party's encrypted storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.model import Collaboration, Environment, Party, WorkloadHost
from components.regions import Cloud


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

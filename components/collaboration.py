"""The collaboration: one cloud site per cloud its parties or workload hosts use.

Each party owns its data key on its own cloud, bound to the same approved measurements; each cloud
site declares the keys of the parties on that cloud and the workload hosts that may obtain them.
Config validation (`components.model.Collaboration`) has already refused any party whose cloud has
no documented key-release path to a host (see `stacks/collaborations/README.md`), so this component
never has to weaken a binding to make a collaboration work.

If the approved measurements are signed, the signature is verified by `stacks.config` before this
component is constructed; the component itself re-checks nothing it cannot fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi

from components.model import Collaboration as CollaborationModel
from components.model import Environment
from components.regions import Cloud
from components.site import SiteArgs

CLOUD_ORDER: Final[tuple[Cloud, ...]] = ("aws", "azure", "gcp")


@dataclass(frozen=True)
class CollaborationArgs:
    environment: Environment
    collaboration: CollaborationModel
    log_retention_days: int = 365


def clouds_used(collaboration: CollaborationModel) -> list[Cloud]:
    """Clouds of the parties and the workload hosts, in a stable order."""
    used = {p.cloud for p in collaboration.parties} | {h.cloud for h in collaboration.workload.hosts}
    return [cloud for cloud in CLOUD_ORDER if cloud in used]


def _site_class(cloud: Cloud) -> Any:
    """Import a cloud's Site lazily: a collaboration on AWS only never loads the Azure SDK."""
    if cloud == "aws":
        from components.aws.site import Site
    elif cloud == "azure":
        from components.azure.site import Site
    else:
        from components.gcp.site import Site
    return Site


class Collaboration(pulumi.ComponentResource):
    """`sites`: cloud -> Site; `site_names`: the sites' logical names (exported by the program);
    `keys`: party name -> that party's data key resource on its own cloud."""

    sites: dict[str, pulumi.ComponentResource]
    site_names: list[str]
    keys: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: CollaborationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:index:Collaboration", name, None, opts)
        collaboration = args.collaboration
        self.sites = {}
        self.site_names = []
        self.keys = {}
        for cloud in clouds_used(collaboration):
            site_name = f"{name}-{cloud}"
            site = _site_class(cloud)(
                site_name,
                SiteArgs(
                    environment=args.environment,
                    collaboration=collaboration,
                    cloud=cloud,
                    log_retention_days=args.log_retention_days,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            self.sites[cloud] = site
            self.site_names.append(site_name)
            self.keys.update(site.keys)
        missing = [p.name for p in collaboration.parties if p.name not in self.keys]
        if missing:
            # A site that silently skipped a party would leave its data without a bound key.
            raise ValueError(f"collaboration {name!r}: no data key was declared for {', '.join(missing)}")
        self.register_outputs(
            {
                "sites": list(self.site_names),
                "measurementsFingerprint": collaboration.measurements.fingerprint(),
            }
        )

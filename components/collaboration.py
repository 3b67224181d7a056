"""The collaboration: one cloud site per cloud its parties or workload hosts use.

Each party owns its data key on its own cloud, bound to the same approved measurements; each cloud
site declares the keys of the parties on that cloud and the workload hosts that may obtain them.
Config validation (`stacks.config.parse`: `components.model.Collaboration` and every used cloud's
checks in `components.site.CLOUDS`) has already refused any party whose cloud has no documented
key-release path to a host (see `stacks/collaborations/README.md`) and every other site-level
problem, so this component never has to weaken a binding to make a collaboration work.

Whether every party has signed the approved measurements (the measurement contract,
`components.attestation.contract`) is the review's and `python -m stacks.contract verify`'s check;
the component itself re-checks nothing it cannot fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Mapping

import pulumi

from components.model import Collaboration as CollaborationModel
from components.model import Environment
from components.regions import Cloud
from components.site import CLOUD_ORDER, CLOUDS, Site, SiteArgs, clouds_used

__all__ = ["CLOUD_ORDER", "Collaboration", "CollaborationArgs", "clouds_used"]


@dataclass(frozen=True)
class CollaborationArgs:
    """`options`: cloud -> that cloud's typed options section of the stack config (absent: defaults)."""

    environment: Environment
    collaboration: CollaborationModel
    log_retention_days: int = 365
    options: Mapping[Cloud, Any] = field(default_factory=dict)


COLLABORATION_TYPE: Final = "ccp:index:Collaboration"


def release_declaration(collaboration: CollaborationModel) -> dict[str, Any]:
    """What the collaboration releases, from what data, and what of it the privacy budget charges: the
    component's inputs, so the review and the policy pack judge the declaration the program makes (rule
    stack-collaboration-output-enforce-dp, the review's privacy section), not a copy of the config."""
    privacy = collaboration.privacy
    dp = collaboration.federated.dp if collaboration.federated is not None else None
    scaling = collaboration.federated.standardizer if collaboration.federated is not None else None
    return {
        "dataClassifications": sorted({p.data_classification for p in collaboration.parties}),
        "outputs": [o.name for o in collaboration.outputs],
        **({"privacy": {"epsilon": privacy.epsilon, "delta": privacy.delta, "outputs": list(privacy.outputs)}}
           if privacy is not None else {}),
        **({"plannedSpends": [
            *([{"mechanism": "dp-standardizer", "output": dp.output, "epsilon": scaling.epsilon, "delta": 0.0}]
              if scaling is not None else []),
            {
                "mechanism": "dp-fedavg", "output": dp.output, "epsilon": dp.epsilon, "delta": dp.delta,
                **({"noiseMultiplier": dp.noise_multiplier} if dp.noise_multiplier is not None else {}),
            },
        ]} if dp is not None else {}),
    }


class Collaboration(pulumi.ComponentResource):
    """`sites`: cloud -> Site; `site_names`: the sites' logical names (exported by the program);
    `keys`: party name -> that party's data key resource on its own cloud."""

    sites: dict[str, Site]
    site_names: list[str]
    keys: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: CollaborationArgs, opts: pulumi.ResourceOptions | None = None):
        collaboration = args.collaboration
        super().__init__(COLLABORATION_TYPE, name, release_declaration(collaboration), opts)
        self.sites = {}
        self.site_names = []
        self.keys = {}
        for cloud in clouds_used(collaboration):
            site_name = f"{name}-{cloud}"
            site = CLOUDS[cloud].site_class()(
                site_name,
                SiteArgs(
                    environment=args.environment,
                    collaboration=collaboration,
                    cloud=cloud,
                    log_retention_days=args.log_retention_days,
                    options=args.options.get(cloud),
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

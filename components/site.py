"""What a cloud site is given, what the collaboration relies on it for, and the one registry of clouds.

Each cloud package (`components.aws`, `components.azure`, `components.gcp`) exposes one `Site`
ComponentResource taking `SiteArgs`; it declares that cloud's network, audit, workload hosts and,
for every party on the cloud, the party's data key (bound to the approved measurements and to the
workload identity on the same cloud) and the party's encrypted storage.

A site only declares resources: every check of its config that needs the whole collaboration (hosts
per key region, accounts, residency, orchestrator ids, ...) is a pure function in the cloud's
`checks` module, run by the config validation (`stacks.config.parse`) so that every problem is
reported in one run, with its config path, before any resource is declared. `CLOUDS` names both per
cloud, so adding a cloud is one registry entry, not an if/else chain in every caller.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping, Protocol, get_args

import pulumi

from components.model import Classification, Collaboration, Environment, Party, WorkloadHost
from components.regions import Cloud

# The explicit non-party marker: resources serving every party (network, hosts, disk/audit/cluster
# keys, the audit trail) carry `party: shared`. Rules treat it as "not a party's data store"; any
# store without a `party` tag at all fails closed. Shared resources may live only where the
# workload runs (the residency rule's `shared` entry).
SHARED_PARTY: Final = "shared"
NAMESPACE: Final = "ccp"


@dataclass(frozen=True)
class Deployment:
    """Facts about the deploying credentials that some checks need and no config key holds.

    The AWS checks compare a party's `account` with the account `pulumi up` deploys to; that account
    is the caller identity, looked up (an invoke, not a resource) before any resource is declared.
    `None` means unknown (e.g. a unit test parsing a stack file): the checks that need it are skipped,
    every other check still runs.
    """

    aws_account_id: str | None = None
    aws_partition: str = "aws"


@dataclass(frozen=True)
class SiteArgs:
    """The slice of the validated config model one cloud's site declares, plus that cloud's options
    section (`ccp-aws:*` -> `AwsOptions`, `ccp-azure:*` -> `AzureOptions`, `ccp-gcp:*` -> `GcpSiteOptions`;
    None: the defaults)."""

    environment: Environment
    collaboration: Collaboration
    cloud: Cloud
    log_retention_days: int = 365
    options: Any = None
    deployment: Deployment = Deployment()

    @property
    def parties(self) -> list[Party]:
        return [p for p in self.collaboration.parties if p.cloud == self.cloud]

    @property
    def hosts(self) -> list[WorkloadHost]:
        return [h for h in self.collaboration.workload.hosts if h.cloud == self.cloud]

    def indexed_parties(self) -> list[tuple[int, Party]]:
        """This cloud's parties with their index in `collaboration.parties` (for `ccp:` paths)."""
        return [(i, p) for i, p in enumerate(self.collaboration.parties) if p.cloud == self.cloud]

    def indexed_hosts(self) -> list[tuple[int, WorkloadHost]]:
        """This cloud's hosts with their index in `collaboration.workload.hosts` (for `ccp:` paths)."""
        return [(i, h) for i, h in enumerate(self.collaboration.workload.hosts) if h.cloud == self.cloud]

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


def problem(path: str, message: str, namespace: str = NAMESPACE) -> str:
    """One config problem as the user reads it: `ccp:collaboration.parties[2].region: <message>`.

    `path` is relative to `namespace` (e.g. `collaboration.workload.hosts[0].instanceType`)."""
    return f"{namespace}:{path}: {message}"


class Site(Protocol):
    """What `components.collaboration.Collaboration` relies on from a cloud's site: a component
    resource whose `keys` hold, for each party on the cloud, that party's data key resource."""

    keys: Mapping[str, pulumi.Resource]


class SiteFactory(Protocol):
    """A cloud's `Site` class: declares the cloud's slice from validated `SiteArgs`."""

    def __call__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None) -> Site: ...


Checks = Callable[[SiteArgs], list[str]]


@dataclass(frozen=True)
class CloudSite:
    """One registered cloud: where its `Site` class and its config checks live.

    Both are imported only when a collaboration uses the cloud, so a collaboration on AWS only never
    loads the Azure or GCP SDKs."""

    cloud: Cloud
    site_ref: str  # "module:attribute" of the cloud's Site class
    checks_ref: str  # "module:attribute" of its checks: SiteArgs -> problems (one line each)

    def site_class(self) -> SiteFactory:
        return _load(self.site_ref)

    def problems(self, args: SiteArgs) -> list[str]:
        """Every config problem of this cloud's slice, one line each with its config path."""
        checks: Checks = _load(self.checks_ref)
        return checks(args)


def _load(ref: str) -> Any:
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


CLOUDS: Final[dict[Cloud, CloudSite]] = {
    "aws": CloudSite("aws", "components.aws.site:Site", "components.aws.checks:problems"),
    "azure": CloudSite("azure", "components.azure.site:Site", "components.azure.checks:problems"),
    "gcp": CloudSite("gcp", "components.gcp.site:Site", "components.gcp.checks:problems"),
}
CLOUD_ORDER: Final[tuple[Cloud, ...]] = tuple(CLOUDS)


def clouds_used(collaboration: Collaboration) -> list[Cloud]:
    """Clouds of the parties and the workload hosts, in the registry's stable order."""
    used = {p.cloud for p in collaboration.parties} | {h.cloud for h in collaboration.workload.hosts}
    return [cloud for cloud in CLOUD_ORDER if cloud in used]


def site_problems(
    environment: Environment,
    collaboration: Collaboration,
    options: Mapping[str, Any],
    deployment: Deployment = Deployment(),
    log_retention_days: int = 365,
) -> list[str]:
    """The checks of every cloud the collaboration uses, all of them (never stopping at the first).

    `options`: cloud -> that cloud's options section (absent: defaults)."""
    problems: list[str] = []
    for cloud in clouds_used(collaboration):
        args = SiteArgs(
            environment=environment,
            collaboration=collaboration,
            cloud=cloud,
            log_retention_days=log_retention_days,
            options=options.get(cloud),
            deployment=deployment,
        )
        problems += CLOUDS[cloud].problems(args)
    return problems

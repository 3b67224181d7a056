"""The site VPC: private subnets with no route to the internet, Google APIs over Private Google Access.

`deleteDefaultRoutesOnCreate` removes the 0.0.0.0/0 route, so workloads reach only Google APIs,
through the `private.googleapis.com` VIP (199.36.153.8/30) and private DNS zones that resolve
`*.googleapis.com` and `*.pkg.dev` (Artifact Registry, where the workload image lives) to it
(https://cloud.google.com/vpc/docs/configure-private-google-access). Ingress is denied except,
when asked, SSH from Identity-Aware Proxy's range (35.235.240.0/20).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_gcp as gcp

from components.gcp.common import bounded

PRIVATE_GOOGLE_ACCESS_VIP: Final = "199.36.153.8/30"
PRIVATE_GOOGLE_ACCESS_ADDRESSES: Final = ["199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"]
IAP_TCP_FORWARDING_RANGE: Final = "35.235.240.0/20"
PRIVATE_DNS_DOMAINS: Final = ("googleapis.com.", "pkg.dev.")


@dataclass(frozen=True)
class SubnetPlan:
    """One workload subnet; the secondary ranges are for GKE pods and services."""

    region: str
    cidr: str
    pods_cidr: str | None = None
    services_cidr: str | None = None


def plan_subnets(regions: list[str], kubernetes_regions: set[str]) -> list[SubnetPlan]:
    """Non-overlapping ranges per region, in a stable order (10.20.<i>.0/24, pods 10.<64+4i>.0.0/14)."""
    plans = []
    for i, region in enumerate(sorted(set(regions))):
        gke = region in kubernetes_regions
        plans.append(
            SubnetPlan(
                region=region,
                cidr=f"10.20.{i}.0/24",
                pods_cidr=f"10.{64 + 4 * i}.0.0/14" if gke else None,
                services_cidr=f"10.30.{16 * i}.0/20" if gke else None,
            )
        )
    return plans


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    subnets: list[SubnetPlan]
    allow_iap_ssh: bool = False
    labels: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """VPC, subnets with flow logs and Private Google Access, the Google APIs route, DNS and firewall."""

    network: gcp.compute.Network
    subnets: dict[str, gcp.compute.Subnetwork]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vpc_name = bounded(name, 63)
        self.network = gcp.compute.Network(
            f"{name}-vpc",
            name=vpc_name,
            project=args.project,
            auto_create_subnetworks=False,
            delete_default_routes_on_create=True,
            routing_mode="REGIONAL",
            description="ccp workload network: no default internet route",
            opts=child,
        )
        self.subnets = {}
        for plan in args.subnets:
            secondary = []
            if plan.pods_cidr and plan.services_cidr:
                secondary = [
                    gcp.compute.SubnetworkSecondaryIpRangeArgs(
                        range_name="pods", ip_cidr_range=plan.pods_cidr
                    ),
                    gcp.compute.SubnetworkSecondaryIpRangeArgs(
                        range_name="services", ip_cidr_range=plan.services_cidr
                    ),
                ]
            self.subnets[plan.region] = gcp.compute.Subnetwork(
                f"{name}-{plan.region}",
                name=bounded(f"{vpc_name}-{plan.region}", 63),
                project=args.project,
                region=plan.region,
                network=self.network.self_link,
                ip_cidr_range=plan.cidr,
                private_ip_google_access=True,
                secondary_ip_ranges=secondary,
                log_config=gcp.compute.SubnetworkLogConfigArgs(
                    aggregation_interval="INTERVAL_5_SEC",
                    flow_sampling=1.0,
                    metadata="INCLUDE_ALL_METADATA",
                ),
                opts=child,
            )
        # The only route out of the VPC: Google APIs through the private VIP.
        self.google_apis_route = gcp.compute.Route(
            f"{name}-google-apis",
            name=bounded(f"{vpc_name}-google-apis", 63),
            project=args.project,
            network=self.network.self_link,
            dest_range=PRIVATE_GOOGLE_ACCESS_VIP,
            next_hop_gateway="default-internet-gateway",
            priority=1000,
            description="Private Google Access VIP (private.googleapis.com) only",
            opts=child,
        )
        self.zones = [self._private_zone(name, args, domain, child) for domain in PRIVATE_DNS_DOMAINS]
        self.deny_ingress = self._ingress_firewall(
            name,
            vpc_name,
            args,
            "deny-all-ingress",
            priority=65534,
            source_range="0.0.0.0/0",
            description="deny every ingress not allowed explicitly",
            opts=child,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
        )
        self.allow_iap: gcp.compute.Firewall | None = None
        if args.allow_iap_ssh:
            self.allow_iap = self._ingress_firewall(
                name,
                vpc_name,
                args,
                "allow-iap-ssh",
                priority=1000,
                source_range=IAP_TCP_FORWARDING_RANGE,
                description="SSH through Identity-Aware Proxy TCP forwarding only",
                opts=child,
                allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
            )
        self.register_outputs(
            {
                "network": self.network.self_link,
                "subnets": {region: s.self_link for region, s in self.subnets.items()},
            }
        )

    def _ingress_firewall(
        self,
        name: str,
        vpc_name: str,
        args: NetworkArgs,
        suffix: str,
        *,
        priority: int,
        source_range: str,
        description: str,
        opts: pulumi.ResourceOptions,
        **rule: Any,
    ) -> gcp.compute.Firewall:
        """An ingress rule on this VPC (`rule` is its `denies` or `allows`), logged with all
        metadata: every allowed or denied connection is audit evidence."""
        return gcp.compute.Firewall(
            f"{name}-{suffix}",
            name=bounded(f"{vpc_name}-{suffix}", 63),
            project=args.project,
            network=self.network.self_link,
            direction="INGRESS",
            priority=priority,
            source_ranges=[source_range],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            description=description,
            opts=opts,
            **rule,
        )

    def _private_zone(
        self, name: str, args: NetworkArgs, domain: str, child: pulumi.ResourceOptions
    ) -> gcp.dns.ManagedZone:
        """A private zone answering `domain` and `*.domain` with the Private Google Access VIP."""
        slug = domain.rstrip(".").replace(".", "-")
        zone = gcp.dns.ManagedZone(
            f"{name}-{slug}",
            name=bounded(f"{name}-{slug}", 63),
            project=args.project,
            dns_name=domain,
            visibility="private",
            description=f"{domain} through Private Google Access",
            labels=args.labels,
            private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                networks=[
                    gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=self.network.self_link)
                ]
            ),
            opts=child,
        )
        # googleapis.com resolves through private.googleapis.com; pkg.dev through its apex.
        target = "private.googleapis.com." if domain == "googleapis.com." else domain
        gcp.dns.RecordSet(
            f"{name}-{slug}-a",
            project=args.project,
            managed_zone=zone.name,
            name=target,
            type="A",
            ttl=300,
            rrdatas=PRIVATE_GOOGLE_ACCESS_ADDRESSES,
            opts=child,
        )
        gcp.dns.RecordSet(
            f"{name}-{slug}-wildcard",
            project=args.project,
            managed_zone=zone.name,
            name=f"*.{domain}",
            type="CNAME",
            ttl=300,
            rrdatas=[target],
            opts=child,
        )
        return zone

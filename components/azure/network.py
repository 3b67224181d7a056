"""Private networking for an Azure site: one VNet per region, NSGs that deny all inbound traffic
unless a rule names it (never from the Internet), egress through a NAT gateway only, and private
DNS zones so vaults and storage are reached on private endpoints.

Why egress at all: a confidential VM must reach Microsoft Azure Attestation (a public endpoint that
Key Vault also reads the token-signing certificates from) before it can get a key released. The
subnets have no default outbound access; the NAT gateway is the only, explicit, egress path.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final

import pulumi
from pulumi_azure_native import network, privatedns

from components.azure.common import child, placement

# Private Link group id -> private DNS zone (https://learn.microsoft.com/azure/private-link/private-endpoint-dns).
PRIVATE_DNS_ZONES: Final[dict[str, str]] = {
    "vault": "privatelink.vaultcore.azure.net",
    "managedhsm": "privatelink.managedhsm.azure.net",
    "blob": "privatelink.blob.core.windows.net",
}
DENY_PRIORITY_INTERNET: Final = 4000
DENY_PRIORITY_ALL: Final = 4096


def _rule(name: str, priority: int, access: str, source: str, *, port: str = "*", protocol: str = "*",
          destination: str = "*") -> network.SecurityRuleArgs:
    return network.SecurityRuleArgs(
        name=name,
        priority=priority,
        direction="Inbound",
        access=access,
        protocol=protocol,
        source_address_prefix=source,
        source_port_range="*",
        destination_address_prefix=destination,
        destination_port_range=port,
    )


def deny_inbound_rules() -> list[network.SecurityRuleArgs]:
    """The closing rules of every NSG: nothing from the Internet, then nothing at all."""
    return [
        _rule("deny-internet-inbound", DENY_PRIORITY_INTERNET, "Deny", "Internet"),
        _rule("deny-all-inbound", DENY_PRIORITY_ALL, "Deny", "*"),
    ]


@dataclass(frozen=True)
class NetworkArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    address_space: str
    tags: dict[str, str]
    # An AKS node subnet (intra-VNet traffic allowed between nodes) is added when True.
    kubernetes: bool = False
    # A subnet delegated to Azure Container Instances (confidential container groups) when True.
    container_groups: bool = False
    subnet_prefix_length: int = field(default=24)


class Network(pulumi.ComponentResource):
    """VNet with `workload`, `endpoints` (and optionally `aks`) subnets in one region."""

    vnet: network.VirtualNetwork
    subnets: dict[str, network.Subnet]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:Network", name, None, opts)
        self.location = args.location
        self.address_space = args.address_space
        common = placement(args.resource_group_name, args.location, args.tags)

        egress_ip = network.PublicIPAddress(
            f"{name}-egress-ip",
            sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            **common,
            opts=child(self),
        )
        nat = network.NatGateway(
            f"{name}-nat",
            sku=network.NatGatewaySkuArgs(name="Standard"),
            public_ip_addresses=[network.SubResourceArgs(id=egress_ip.id)],
            idle_timeout_in_minutes=4,
            **common,
            opts=child(self),
        )
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            **common,
            opts=child(self),
        )

        blocks = ipaddress.ip_network(args.address_space).subnets(new_prefix=args.subnet_prefix_length)
        layout: dict[str, list[network.SecurityRuleArgs]] = {
            # The workload needs no inbound connection: it pulls its inputs and keys.
            "workload": deny_inbound_rules(),
            # Private endpoints answer HTTPS from inside the VNet (and peered VNets) only.
            "endpoints": [
                _rule("allow-https-from-vnet", 100, "Allow", "VirtualNetwork", port="443", protocol="Tcp",
                      destination="VirtualNetwork"),
                *deny_inbound_rules(),
            ],
        }
        if args.kubernetes:
            layout["aks"] = [
                _rule("allow-vnet-inbound", 200, "Allow", "VirtualNetwork", destination="VirtualNetwork"),
                *deny_inbound_rules(),
            ]
        if args.container_groups:
            # Confidential container groups get private IPs here only (no inbound connection).
            layout["containers"] = deny_inbound_rules()
        self.nsgs: dict[str, network.NetworkSecurityGroup] = {}
        self.subnets = {}
        for role, rules in layout.items():
            nsg = network.NetworkSecurityGroup(
                f"{name}-{role}-nsg", security_rules=rules, **common, opts=child(self)
            )
            self.nsgs[role] = nsg
            self.subnets[role] = network.Subnet(
                f"{name}-{role}",
                resource_group_name=args.resource_group_name,
                virtual_network_name=self.vnet.name,
                address_prefix=str(next(blocks)),
                network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
                default_outbound_access=False,
                nat_gateway=None if role == "endpoints" else network.SubResourceArgs(id=nat.id),
                # NSGs apply to private endpoints only with network policies enabled.
                private_endpoint_network_policies="Enabled",
                delegations=[
                    network.DelegationArgs(name="aci", service_name="Microsoft.ContainerInstance/containerGroups")
                ] if role == "containers" else None,
                opts=child(self),
            )
        self.register_outputs({"vnetId": self.vnet.id})


@dataclass(frozen=True)
class PrivateDnsArgs:
    resource_group_name: pulumi.Input[str]
    networks: list[Network]
    tags: dict[str, str]


class PrivateDns(pulumi.ComponentResource):
    """The private DNS zones for Key Vault, Managed HSM and blob endpoints, linked to every VNet."""

    zones: dict[str, privatedns.PrivateZone]

    def __init__(self, name: str, args: PrivateDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:PrivateDns", name, None, opts)
        self.zones = {}
        for group, zone_name in PRIVATE_DNS_ZONES.items():
            zone = privatedns.PrivateZone(
                f"{name}-{group}",
                private_zone_name=zone_name,
                resource_group_name=args.resource_group_name,
                location="global",  # private DNS zones are global resources
                tags=args.tags,
                opts=child(self),
            )
            self.zones[group] = zone
            for net in args.networks:
                privatedns.VirtualNetworkLink(
                    f"{name}-{group}-{net.location}",
                    private_zone_name=zone.name,
                    resource_group_name=args.resource_group_name,
                    virtual_network=privatedns.SubResourceArgs(id=net.vnet.id),
                    registration_enabled=False,
                    location="global",
                    tags=args.tags,
                    opts=child(self),
                )
        self.register_outputs({group: zone.id for group, zone in self.zones.items()})


def peer(name: str, a: Network, b: Network, resource_group_names: dict[str, pulumi.Input[str]],
         parent: pulumi.Resource) -> None:
    """Peer two regional VNets both ways (workloads reach other regions' private endpoints)."""
    for local, remote in ((a, b), (b, a)):
        network.VirtualNetworkPeering(
            f"{name}-{local.location}-to-{remote.location}",
            resource_group_name=resource_group_names[local.location],
            virtual_network_name=local.vnet.name,
            remote_virtual_network=network.SubResourceArgs(id=remote.vnet.id),
            allow_virtual_network_access=True,
            allow_forwarded_traffic=False,
            allow_gateway_transit=False,
            use_remote_gateways=False,
            opts=child(parent),
        )


def private_endpoint(
    name: str,
    *,
    parent: pulumi.Resource,
    resource_group_name: pulumi.Input[str],
    location: str,
    subnet: network.Subnet,
    target_id: pulumi.Input[str],
    group_id: str,
    dns: PrivateDns,
    tags: dict[str, str],
) -> network.PrivateEndpoint:
    """A private endpoint for `target_id` with its DNS record in the private zone of `group_id`
    (so the service's public name resolves to the endpoint inside every linked VNet)."""
    zone = dns.zones[group_id]
    endpoint = network.PrivateEndpoint(
        name,
        resource_group_name=resource_group_name,
        location=location,
        subnet=network.SubnetArgs(id=subnet.id),
        private_link_service_connections=[
            network.PrivateLinkServiceConnectionArgs(
                name=f"{name}-{group_id}", private_link_service_id=target_id, group_ids=[group_id]
            )
        ],
        tags=tags,
        opts=child(parent),
    )
    network.PrivateDnsZoneGroup(
        f"{name}-dns",
        resource_group_name=resource_group_name,
        private_endpoint_name=endpoint.name,
        private_dns_zone_configs=[
            network.PrivateDnsZoneConfigArgs(name=group_id, private_dns_zone_id=zone.id)
        ],
        opts=child(parent),
    )
    return endpoint
